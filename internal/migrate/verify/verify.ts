import type pg from "pg";
import { adoptable, readGolangMigrate } from "../adopt.js";
import { connect, disconnect } from "../connect.js";
import type { MigratorOptions } from "../options.js";
import { withCopy } from "../rehearse/copy.js";
import { readMigrations, type MigrationFile } from "../source.js";
import { loadSqlParser } from "../sql.js";
import { compare, readApplied, stateTableExists, type Applied } from "../state.js";
import { catalogOf, inSnapshot, readCatalog, type ReadBounds } from "./catalog.js";
import { diffCatalogs, inconsistent, type Difference } from "./diff.js";

// `migrate verify`, the schema half: the applied files replayed into a
// throwaway database beside the target (the rehearsal's copy), and the two
// catalogs compared. The target is only read.

export interface SchemaVerification {
  consistent: boolean;
  /** The throwaway database the files were replayed into (dropped after). */
  database: string;
  /** Applied migrations replayed, in the order they ran. */
  replayed: number;
  /** Pending migrations: not applied, so not compared. */
  pending: number;
  differences: Difference[];
  /** Why the replay may not be what ran: applied files edited since. */
  warnings: string[];
}

/**
 * Replays the migrations the target records as applied (or that `up` would
 * adopt from golang-migrate) and compares schemas. Throws when it cannot
 * check: the target unreachable, no CREATEDB, an applied file gone or not
 * replaying, or `signal` (SIGINT, SIGTERM) stopped the replay.
 */
export async function verifySchema(
  opts: MigratorOptions,
  signal?: AbortSignal,
): Promise<SchemaVerification> {
  const source = readMigrations(opts.dir);
  // The replay splits the files into statements with it (withCopy expects it loaded).
  await loadSqlParser();
  // Reading only: bounded even with statement_timeout off, as `status` is.
  const reply = { replyTimeoutMs: opts.statementTimeoutMs + opts.connectTimeoutMs };
  const bounds: ReadBounds = opts;
  const target = await connect(opts.databaseUrl, opts.connectTimeoutMs, reply);
  try {
    // What ran and what it made, at one moment: a migrator committing
    // between the two reads must not read as drift.
    const { applied, database } = await inSnapshot(target, bounds, async () => ({
      applied: await appliedOf(target, source.migrations),
      database: await catalogOf(target),
    }));
    const { pending, problems } = compare(source.migrations, applied);
    const warnings = problems
      .filter((p) => p.kind === "changed")
      .map((p) => `${p.message}; the replay uses the file as it is now`);
    return await withCopy(
      opts,
      target,
      applied,
      source.migrations,
      "replay",
      async (copy) => {
        const replayed = await connect(copy.url, opts.connectTimeoutMs, reply);
        try {
          const differences = diffCatalogs(await readCatalog(replayed, bounds), database);
          return {
            consistent: !inconsistent(differences),
            database: copy.name,
            replayed: applied.length,
            pending: pending.length,
            differences,
            warnings,
          };
        } finally {
          await disconnect(replayed, opts.connectTimeoutMs);
        }
      },
      signal,
    );
  } finally {
    await disconnect(target, opts.connectTimeoutMs);
  }
}

// What ran: pgmigrations, else what `up` would record from golang-migrate.
async function appliedOf(target: pg.ClientBase, files: MigrationFile[]): Promise<Applied[]> {
  if (await stateTableExists(target)) return readApplied(target);
  const golang = await readGolangMigrate(target);
  if (!golang) return [];
  return adoptable(files, golang).map((f) => ({
    name: f.name,
    runOn: new Date(0),
    checksum: f.checksum,
  }));
}
