import type { MigrationFile } from "../source.js";
import { splitStatements, SqlSyntaxError, type Split } from "../sql.js";
import { markerLines } from "./marker.js";
import type { DatabaseCatalog } from "./catalog.js";
import { lintMigrationFiles } from "./file.js";
import { bySize, type Thresholds } from "./severity.js";
import type { Finding } from "./finding.js";
import { namesOf, RULES, type RuleId } from "./rules.js";

// Consent lives in the migration file, reviewed like code: a line
// `-- migrate:allow RULE "reason"` in the comments just above a statement
// accepts that rule's error for that statement. `up` refuses a pending file
// with an error nobody consented to; there is no flag that waives it.

/** A consent marker read from a file. */
export interface Allow {
  /** The rule's id (a marker naming it by an old id is read as the id). */
  rule: string;
  reason: string;
  /** 1-based line of the marker. */
  line: number;
}

/** An error-level finding with no consent: what blocks the file, and the line that would unblock it. */
export interface Needed {
  rule: string;
  file: string;
  line: number;
  message: string;
  /** The exact marker to add just above the statement at `line`. */
  marker: string;
}

/** What the gate found in one pending up file. */
export interface ConsentCheck {
  name: string;
  file: string;
  needed: Needed[];
  /** Markers that consented to a finding: recorded with the migration. */
  used: Allow[];
  /** Malformed markers (no reason, unknown rule): they block the file too. */
  errors: string[];
  /** Well-formed markers matching no finding: a warning. */
  unused: Allow[];
}

// Rules the gate leaves to `migrate lint`: a syntax error stops `up` on its
// own, and a missing down file is about reverting, not about what `up` does.
const NOT_GATED = new Set(["syntax", "missing-down"]);

// What an expand migration may not do: no marker waives it (lint/expand.ts).
const UNCONSENTABLE = "expand-incompatible";

// A marker may name a rule by its id or by an id this linter used before;
// an old id that several rules share names none of them.
const RULES_BY_NAME = new Map<string, RuleId[]>();
for (const id of Object.keys(RULES) as RuleId[])
  for (const name of namesOf(id)) RULES_BY_NAME.set(name, [...(RULES_BY_NAME.get(name) ?? []), id]);

// `-- migrate:lint-ignore …` silences `migrate lint` only: blanked (lines kept) before the gate lints.
const LINT_IGNORE = /^[ \t]*--[ \t]*migrate:lint-ignore\b.*$/gm;

/**
 * Every consent marker of `text`, each under its rule's id, and the malformed
 * ones as errors naming file and line.
 */
export function readMarkers(text: string, file: string): { allows: Allow[]; errors: string[] } {
  const allows: Allow[] = [];
  const errors: string[] = [];
  for (const { index, rest: raw } of markerLines(text)) {
    const line = index + 1;
    const rest = raw.trim();
    const name = /^[^\s"]+/.exec(rest)?.[0];
    const where = `${file}:${line}`;
    if (!name) {
      errors.push(`${where}: -- migrate:allow names no rule: write -- migrate:allow RULE "why"`);
      continue;
    }
    if (name === UNCONSENTABLE) {
      errors.push(
        `${where}: -- migrate:allow ${UNCONSENTABLE}: no consent makes an expand break the previous release: move the statement to the contract migration`,
      );
      continue;
    }
    const ids = (RULES_BY_NAME.get(name) ?? []).filter(
      (id) => !NOT_GATED.has(id) && id !== UNCONSENTABLE,
    );
    if (ids.length !== 1) {
      const known = Object.keys(RULES).filter((r) => !NOT_GATED.has(r));
      errors.push(
        ids.length > 1
          ? `${where}: -- migrate:allow: "${name}" is an old name of several rules (${ids.join(", ")}): name the one this statement needs`
          : `${where}: -- migrate:allow: unknown rule "${name}" (rules that take consent: ${known.join(", ")})`,
      );
      continue;
    }
    // Everything between the first and the last double quote: a reason may quote.
    const reason = /^"(.*)"$/.exec(rest.slice(name.length).trim())?.[1]?.trim();
    if (!reason) {
      errors.push(
        `${where}: -- migrate:allow ${name} has no reason: write -- migrate:allow ${name} "why it is safe here" (a reason in double quotes is required)`,
      );
      continue;
    }
    allows.push({ rule: ids[0]!, reason, line });
  }
  return { allows, errors };
}

/**
 * The gate for the up files about to run (`pending`, by name), each linted
 * after the files before it and against the database's tables and sizes, as
 * `migrate lint --sizes` does, with any lint-ignore lifted: its error-level
 * findings against its consent markers. `split` may remember files the
 * caller parsed already.
 */
export async function checkConsents(
  files: MigrationFile[],
  pending: ReadonlySet<string>,
  catalog: DatabaseCatalog,
  thresholds?: Thresholds,
  split?: Split,
): Promise<Map<string, ConsentCheck>> {
  const unignored = files.map((f) =>
    pending.has(f.name) ? { ...f, up: f.up.replace(LINT_IGNORE, "") } : f,
  );
  // Judged against the database as `migrate lint --sizes` does: a rewrite of
  // a table that is empty (or made by an earlier pending file) needs no consent.
  const linted = await lintMigrationFiles(unignored, { only: pending, catalog, split });
  const findings = bySize(linted, catalog, thresholds);
  const checks = new Map<string, ConsentCheck>();
  for (const file of files.filter((f) => pending.has(f.name))) {
    // Warnings too: a marker for a rule that is only a warning here (a small
    // table) is not "unused", it is not needed yet.
    const own = findings.filter((f) => f.file === file.upPath && !NOT_GATED.has(f.rule));
    checks.set(file.name, matchConsent(file, own));
  }
  return checks;
}

/**
 * `findings` of one up file (any severity; the errors need consent) against
 * its consent markers. A marker covers the
 * findings of the statement it sits above, among that statement's leading
 * comments, naming the finding's rule by its id or an older alias.
 */
export function matchConsent(file: MigrationFile, findings: Finding[]): ConsentCheck {
  const { allows, errors } = readMarkers(file.up, file.upPath);
  const covered = allowsFor(file, allows, findings);
  const used = new Set(covered.values());
  return {
    name: file.name,
    file: file.upPath,
    needed: findings
      .filter((f) => f.severity === "error" && !covered.has(f))
      .map((f) => need(f, file)),
    used: allows.filter((a) => used.has(a)),
    errors,
    unused: allows.filter((a) => !used.has(a)),
  };
}

/** The consent each of `findings` (of `file`'s up file) has, for `migrate lint` to show. */
export function consentsOf(file: MigrationFile, findings: Finding[]): Map<Finding, Allow> {
  return allowsFor(file, readMarkers(file.up, file.upPath).allows, findings);
}

function allowsFor(file: MigrationFile, allows: Allow[], findings: Finding[]) {
  const covered = new Map<Finding, Allow>();
  if (allows.length === 0 || findings.length === 0) return covered;
  const spans = statementSpans(file.up, file.upPath);
  for (const f of findings) {
    const span = spanOf(spans, f.line);
    const allow = allows.find(
      (a) =>
        a.rule === f.rule && span !== undefined && a.line >= span.leadFrom && a.line < span.first,
    );
    if (allow) covered.set(f, allow);
  }
  return covered;
}

const spanOf = (spans: ReturnType<typeof statementSpans>, line: number) =>
  spans.find((s) => line >= s.first && line <= s.last);

/** Whether the file may run: no finding lacks consent and every marker is well formed. */
export function consented(c: ConsentCheck): boolean {
  return c.needed.length === 0 && c.errors.length === 0;
}

/** What `up --dry-run`, `plan` and `up --rehearse` show of a file's check: `ok` is false where `up` refuses it. */
export type Gate = Omit<ConsentCheck, "name" | "file"> & { ok: boolean };

export function gateOf(c: ConsentCheck): Gate {
  return { ok: consented(c), needed: c.needed, used: c.used, errors: c.errors, unused: c.unused };
}

/** Pending files that lack consent: `up` refuses them all before applying anything. */
export class ConsentRequiredError extends Error {
  override name = "ConsentRequiredError";
  /** For `--json`: each refused file with what it needs. */
  readonly details: { refused: ConsentCheck[] };
  constructor(readonly checks: ConsentCheck[]) {
    super(
      [
        ...checks.flatMap((c) => [
          ...c.errors,
          ...c.needed.map((n) =>
            n.rule === UNCONSENTABLE
              ? `${n.file}:${n.line}: [${n.rule}] ${n.message}; ${n.marker}`
              : `${n.file}:${n.line}: [${n.rule}] ${n.message}; to apply it anyway, add above line ${n.line}: ${n.marker}`,
          ),
        ]),
        "nothing was applied: a dangerous statement runs only with consent written in its file, with a reason (see docs/migrations.md, Consent)",
      ].join("\n"),
    );
    this.details = { refused: checks };
  }
}

function need(f: Finding, file: MigrationFile): Needed {
  const line = spanOf(statementSpans(file.up, file.upPath), f.line)?.first ?? f.line;
  return {
    rule: f.rule,
    file: f.file,
    line,
    message: f.message,
    marker:
      f.rule === UNCONSENTABLE
        ? "move it to the contract migration (no consent waives this)"
        : `-- migrate:allow ${f.rule} "<why this is safe here>"`,
  };
}

/** Each statement's lines, and the first line of the comments that lead it. */
function statementSpans(text: string, file: string) {
  let statements;
  try {
    statements = splitStatements(text, file);
  } catch (err) {
    if (err instanceof SqlSyntaxError) return [];
    throw err;
  }
  return statements.map((s) => {
    const leadLines = s.leading.split("\n").length - 1;
    return {
      first: s.line,
      last: s.line + s.sql.split("\n").length - 1,
      leadFrom: s.line - leadLines,
    };
  });
}
