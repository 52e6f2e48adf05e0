import { readMigrations } from "../source.js";
import type { DatabaseCatalog } from "./catalog.js";
import { lintMigrationFiles } from "./file.js";
import type { Finding } from "./finding.js";
import { RULES, type Rule } from "./rules.js";

export type { Finding, Lock, TableSize } from "./finding.js";
export { lockText } from "./finding.js";
export { lintMigrationFile, lintMigrationFiles } from "./file.js";
export { RULES } from "./rules.js";

/** Where a sized rule's finding turns from warning to error: a table at or above either bound. */
export interface Thresholds {
  errorRows: number;
  errorBytes: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = { errorRows: 100_000, errorBytes: 64 * 1024 * 1024 };

export interface DatabaseLint {
  databaseUrl: string;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  thresholds?: Thresholds;
}

export interface LintOptions {
  /** Also the schema-style rules. */
  style?: boolean;
}

export interface LintResult {
  findings: Finding[];
  /** With a database: migrations already applied, not judged (their tables count as existing). */
  applied: string[];
}

/**
 * Lints every migration of `dir`. Without a database each file is judged by
 * the files before it and each rule keeps its default severity. With one,
 * only pending files are judged, tables exist when the catalog says so, and
 * a rule whose cost grows with the table takes its severity from the table's
 * size.
 */
export async function lintMigrations(
  dir: string,
  db?: DatabaseLint,
  { style }: LintOptions = {},
): Promise<LintResult> {
  const files = readMigrations(dir).migrations;
  if (!db) return { findings: await lintMigrationFiles(files, { style }), applied: [] };
  // The driver loads only when a database is given: lint alone stays quick.
  const [{ connect, disconnect }, { readApplied }, { readCatalog }] = await Promise.all([
    import("../connect.js"),
    import("../state.js"),
    import("./catalog.js"),
  ]);
  const client = await connect(db.databaseUrl, db.connectTimeoutMs, {
    replyTimeoutMs: db.statementTimeoutMs + db.connectTimeoutMs,
  });
  try {
    const applied = new Set((await readApplied(client)).map((a) => a.name));
    const catalog = await readCatalog(client);
    const only = new Set(files.filter((f) => !applied.has(f.name)).map((f) => f.name));
    const findings = await lintMigrationFiles(files, { only, catalog, style });
    return {
      findings: findings.map((f) => sized(f, catalog, db.thresholds ?? DEFAULT_THRESHOLDS)),
      applied: files.filter((f) => applied.has(f.name)).map((f) => f.name),
    };
  } finally {
    await disconnect(client, db.connectTimeoutMs);
  }
}

// A table the database does not have yet is created by an earlier pending
// file: empty when this one runs.
function sized(f: Finding, catalog: DatabaseCatalog, t: Thresholds): Finding {
  if (!f.table) return f;
  const size = catalog.size(f.table) ?? { rows: 0, bytes: 0 };
  const rule = RULES[f.rule as keyof typeof RULES] as Rule | undefined;
  // Warnings stay warnings (a function body's DDL, the style rules).
  if (!rule?.sized || f.severity === "warning") return { ...f, size };
  const big = size.rows >= t.errorRows || size.bytes >= t.errorBytes;
  return { ...f, size, severity: big ? "error" : "warning" };
}
