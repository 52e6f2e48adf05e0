import { readMigrations, type MigrationFile } from "../source.js";
import { consentsOf } from "./consent.js";
import { lintMigrationFiles } from "./file.js";
import type { Finding } from "./finding.js";
import { bySize, type Thresholds } from "./severity.js";

export type { Finding, Lock, TableSize } from "./finding.js";
export { blocking, lockText } from "./finding.js";
export { lintMigrationFile, lintMigrationFiles } from "./file.js";
export { RULES } from "./rules.js";
export { DEFAULT_THRESHOLDS, type Thresholds } from "./severity.js";

export interface DatabaseLint {
  databaseUrl: string;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  /** Bounds the wait for a table's ACCESS SHARE lock while sizing it. */
  lockTimeoutMs: number;
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
  if (!db)
    return {
      findings: withConsent(files, await lintMigrationFiles(files, { style })),
      applied: [],
    };
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
    const catalog = await readCatalog(client, db);
    const only = new Set(files.filter((f) => !applied.has(f.name)).map((f) => f.name));
    const findings = await lintMigrationFiles(files, { only, catalog, style });
    return {
      findings: withConsent(files, bySize(findings, catalog, db.thresholds)),
      applied: files.filter((f) => applied.has(f.name)).map((f) => f.name),
    };
  } finally {
    await disconnect(client, db.connectTimeoutMs);
  }
}

/** Findings with the consent their file gives them (see consent.ts); consented errors block nothing. */
function withConsent(files: MigrationFile[], findings: Finding[]): Finding[] {
  const given = new Map<Finding, string>();
  for (const file of files) {
    const own = findings.filter((f) => f.file === file.upPath && f.severity === "error");
    for (const [f, allow] of consentsOf(file, own)) given.set(f, allow.reason);
  }
  return findings.map((f) => (given.has(f) ? { ...f, consent: given.get(f) } : f));
}
