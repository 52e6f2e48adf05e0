import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { checksummedText } from "./lint/marker.js";
import { readPhase, type Phase } from "./phase.js";

/** One version: its up file and, when present, its down file. */
export interface MigrationFile {
  /**
   * The up file's base name without `.up.sql`, as recorded in
   * pgmigrations.name: `000001_init_schema`.
   */
  name: string;
  /** The numeric prefix; files pair and order by it, as golang-migrate does. */
  version: bigint;
  upPath: string;
  downPath: string | undefined;
  /** File text with line endings normalised; an empty file is a no-op. */
  up: string;
  down: string | undefined;
  /** SHA-256 (hex) of the up text, less its `-- migrate:allow` lines (adding consent is not an edit). */
  checksum: string;
  /** What its `-- migrate:phase` line declares (phase.ts); undefined when unmarked. */
  phase?: Phase;
}

/** What a folder holds: the migrations in order, and the files that are not one. */
export interface MigrationSource {
  migrations: MigrationFile[];
  /** Files ignored (a README, .go files, other extensions), for `validate` to list. */
  ignored: string[];
  /** Oddities worth a warning, e.g. a down file whose version has no up file. */
  warnings: string[];
}

/** A problem with the files themselves, naming the file. */
export class MigrationSourceError extends Error {
  override name = "MigrationSourceError";
}

// golang-migrate's pattern: `^([0-9]+)_(.*)\.(down|up)\.(.*)$`; of its
// extensions, SQL (in any case) is the one a PostgreSQL migration can have.
const FILE = /^([0-9]+)_(.*)\.(down|up)\.([sS][qQ][lL])$/;

/**
 * Reads every migration in `dir`, paired and ordered by version as
 * golang-migrate does (an up and a down of one version may carry different
 * titles). Nothing is parsed here: SQL is parsed only when it is about to run.
 */
export function readMigrations(dir: string): MigrationSource {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    throw new MigrationSourceError(
      `migrations directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  const byVersion = new Map<bigint, { up?: string; down?: string }>();
  const ignored: string[] = [];
  for (const entry of entries.sort()) {
    const m = FILE.exec(entry);
    if (!m) {
      ignored.push(entry);
      continue;
    }
    const version = BigInt(m[1]!);
    const direction = m[3] as "up" | "down";
    const pair = byVersion.get(version) ?? {};
    const other = pair[direction];
    if (other) {
      throw new MigrationSourceError(
        `${join(dir, entry)}: version ${version} already has ${direction === "up" ? "an" : "a"} ${direction} file, ${other}`,
      );
    }
    pair[direction] = entry;
    byVersion.set(version, pair);
  }
  const warnings: string[] = [];
  const migrations = [...byVersion]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([version, pair]) => toFile(dir, version, pair, warnings));
  checkContracts(migrations);
  return { migrations, ignored, warnings };
}

function toFile(
  dir: string,
  version: bigint,
  pair: { up?: string; down?: string },
  warnings: string[],
): MigrationFile {
  const base = pair.up ?? pair.down!;
  const name = base.replace(/\.(up|down)\.[sS][qQ][lL]$/, "");
  checkName(join(dir, base), name);
  if (!pair.up) {
    // golang-migrate applies such a version as a no-op; so do we, saying so.
    warnings.push(`${join(dir, base)} has no up file: version ${version} applies as a no-op`);
  }
  const up = pair.up ? read(join(dir, pair.up)) : "";
  const phase = pair.up ? readPhase(up, join(dir, pair.up)) : undefined;
  if (phase && "problem" in phase) throw new MigrationSourceError(phase.problem);
  return {
    name,
    version,
    upPath: join(dir, pair.up ?? `${name}.up.sql`),
    downPath: pair.down ? join(dir, pair.down) : undefined,
    up,
    down: pair.down ? read(join(dir, pair.down)) : undefined,
    checksum: createHash("sha256").update(checksummedText(up)).digest("hex"),
    ...(phase ? { phase } : {}),
  };
}

// A contract completes an expand that comes before it in this folder: `up
// --phase contract` applies it only once that expand is applied.
function checkContracts(migrations: MigrationFile[]): void {
  const byVersion = new Map(migrations.map((m) => [m.version, m]));
  for (const m of migrations) {
    if (m.phase?.kind !== "contract") continue;
    const expand = byVersion.get(m.phase.expands);
    const problem =
      m.phase.expands >= m.version
        ? "which is not before it"
        : !expand
          ? "which is not in this folder"
          : expand.phase?.kind !== "expand"
            ? `but ${expand.name} is not marked -- migrate:phase expand`
            : undefined;
    if (problem)
      throw new MigrationSourceError(
        `${m.upPath}: -- migrate:phase contract ${m.phase.expands} names version ${m.phase.expands}, ${problem}`,
      );
  }
}

// The name goes into pgmigrations.name (varchar(255)), as a literal in our
// record and in node-pg-migrate's, which quotes nothing.
function checkName(path: string, name: string): void {
  if (name.length > 255) throw new MigrationSourceError(`${path}: name longer than 255 characters`);
  // eslint-disable-next-line no-control-regex
  if (/['\\\u0000-\u001f\u007f]/.test(name)) {
    throw new MigrationSourceError(
      `${path}: the title may not contain quotes, backslashes or control characters`,
    );
  }
}

// Strict: invalid UTF-8 would otherwise become U+FFFD unseen, and a NUL
// would end the SQL where libpq sends it, so that what runs, what the gate
// lints and what the checksum covers are no longer the same text.
const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function read(path: string): string {
  const bytes = readFileSync(path);
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new MigrationSourceError(`${path}: not valid UTF-8: save it as UTF-8`);
  }
  const nul = text.indexOf("\0");
  if (nul >= 0) {
    const line = text.slice(0, nul).split("\n").length;
    throw new MigrationSourceError(
      `${path}:${line}: a NUL byte: PostgreSQL would take the file to end there; remove it`,
    );
  }
  return text.replace(/\r\n?/g, "\n");
}
