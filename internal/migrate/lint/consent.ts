import type { MigrationFile } from "../source.js";
import { splitStatements, SqlSyntaxError } from "../sql.js";
import { ALLOW_LINE } from "./marker.js";
import { lintMigrationFile, RULES, type Finding } from "./lint.js";

// Consent lives in the migration file, reviewed like code: a line
// `-- migrate:allow RULE "reason"` in the comments just above a statement
// accepts that rule's error for that statement. `up` refuses a pending file
// with an error nobody consented to; there is no flag that waives it.

/** A consent marker read from a file. */
export interface Allow {
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

// `-- migrate:lint-ignore …` silences `migrate lint` only: blanked (lines kept) before the gate lints.
const LINT_IGNORE = /^[ \t]*--[ \t]*migrate:lint-ignore\b.*$/gm;

/** Every consent marker of `text`, and the malformed ones as errors naming file and line. */
export function readMarkers(text: string, file: string): { allows: Allow[]; errors: string[] } {
  const allows: Allow[] = [];
  const errors: string[] = [];
  text.split("\n").forEach((content, i) => {
    const m = ALLOW_LINE.exec(content);
    if (!m) return;
    const line = i + 1;
    const rest = m[1]!.trim();
    const rule = /^[^\s"]+/.exec(rest)?.[0];
    const where = `${file}:${line}`;
    if (!rule) {
      errors.push(`${where}: -- migrate:allow names no rule: write -- migrate:allow RULE "why"`);
      return;
    }
    if (!(rule in RULES) || NOT_GATED.has(rule)) {
      const known = Object.keys(RULES).filter((r) => !NOT_GATED.has(r));
      errors.push(
        `${where}: -- migrate:allow: unknown rule "${rule}" (rules that take consent: ${known.join(", ")})`,
      );
      return;
    }
    const reason = /^"([^"]*)"$/.exec(rest.slice(rule.length).trim())?.[1]?.trim();
    if (!reason) {
      errors.push(
        `${where}: -- migrate:allow ${rule} has no reason: write -- migrate:allow ${rule} "why it is safe here" (a reason in double quotes is required)`,
      );
      return;
    }
    allows.push({ rule, reason, line });
  });
  return { allows, errors };
}

/**
 * The gate for one up file about to run: its error-level findings (with any
 * lint-ignore lifted) against its consent markers. A marker covers the
 * findings of the statement it sits above, among that statement's leading
 * comments. The SQL parser must be loaded.
 */
export function checkConsent(file: MigrationFile): ConsentCheck {
  const { allows, errors } = readMarkers(file.up, file.upPath);
  const unignored = { ...file, up: file.up.replace(LINT_IGNORE, "") };
  const findings = lintMigrationFile(unignored).filter(
    (f) => f.severity === "error" && f.file === file.upPath && !NOT_GATED.has(f.rule),
  );
  // Parsed again only when something needs consent (most files: nothing).
  const spans = findings.length > 0 ? statementSpans(file.up, file.upPath) : [];
  const used = new Set<Allow>();
  const needed: Needed[] = [];
  for (const f of findings) {
    const span = spans.find((s) => f.line >= s.first && f.line <= s.last);
    const allow = allows.find(
      (a) =>
        a.rule === f.rule && span !== undefined && a.line >= span.leadFrom && a.line < span.first,
    );
    if (allow) used.add(allow);
    else needed.push(need(f, span?.first ?? f.line));
  }
  return {
    name: file.name,
    file: file.upPath,
    needed,
    used: allows.filter((a) => used.has(a)),
    errors,
    unused: allows.filter((a) => !used.has(a)),
  };
}

/** Whether the file may run: no finding lacks consent and every marker is well formed. */
export function consented(c: ConsentCheck): boolean {
  return c.needed.length === 0 && c.errors.length === 0;
}

/** Pending files that lack consent: `up` refuses them all before applying anything. */
export class ConsentRequiredError extends Error {
  override name = "ConsentRequiredError";
  constructor(readonly checks: ConsentCheck[]) {
    super(
      [
        ...checks.flatMap((c) => [
          ...c.errors,
          ...c.needed.map(
            (n) =>
              `${n.file}:${n.line}: [${n.rule}] ${n.message}; to apply it anyway, add above line ${n.line}: ${n.marker}`,
          ),
        ]),
        "nothing was applied: a dangerous statement runs only with consent written in its file, with a reason (see docs/migrations.md, Consent)",
      ].join("\n"),
    );
  }
}

function need(f: Finding, statementLine: number): Needed {
  return {
    rule: f.rule,
    file: f.file,
    line: statementLine,
    message: f.message,
    marker: `-- migrate:allow ${f.rule} "<why this is safe here>"`,
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
