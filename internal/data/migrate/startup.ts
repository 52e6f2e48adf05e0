import type pg from "pg";
import { inspect } from "./inspect.js";
import { run, type MigratorOptions } from "./runner.js";
import { readMigrations, type MigrationSource } from "./source.js";

/**
 * What the server does with migrations before serving, per
 * `data.database.migrate`: `up` applies pending ones under the shared lock,
 * `check` refuses to start while any is pending, an applied file changed or
 * an index is INVALID, `off` does neither.
 */
export async function migrateOnStart(
  mode: string,
  opts: MigratorOptions,
  pool: pg.Pool,
): Promise<void> {
  if (mode === "off") return;
  if (mode === "up") {
    const report = await run(opts, { kind: "up" });
    if (report.failed) {
      const f = report.failed;
      throw new Error(`migrate: ${f.name} (${f.direction}) failed at ${f.at}: ${f.message}`);
    }
    return;
  }
  const lag = await schemaLag(readMigrations(opts.dir), pool, { indexes: true });
  if (lag.length > 0) {
    throw new Error(
      `migrate: check: ${lag.join("; ")}; run \`migrate up\` (see \`migrate status\`)`,
    );
  }
}

/**
 * Readiness: fails, naming them, while migrations are pending or an applied
 * file changed. An INVALID index stops a start (check mode) but not
 * readiness: every pod turning unready at once over an index is an outage.
 */
export function migrationReadiness(dir: string, pool: pg.Pool): () => Promise<void> {
  let source: MigrationSource | Error;
  try {
    source = readMigrations(dir);
  } catch (err) {
    // A folder that cannot be read reports through readiness, not as a crash.
    source = err as Error;
  }
  return async () => {
    if (source instanceof Error) throw source;
    const lag = await schemaLag(source, pool, { indexes: false });
    if (lag.length > 0) throw new Error(lag.join("; "));
  };
}

/** How the database's schema is behind the files: pending migrations first, then errors. */
async function schemaLag(
  source: MigrationSource,
  pool: pg.Pool,
  { indexes }: { indexes: boolean },
): Promise<string[]> {
  const client = await pool.connect();
  try {
    const { pending, problems } = await inspect(client, source);
    const found = problems
      .filter((p) => p.severity === "error" && (indexes || p.kind !== "invalid-index"))
      .map((p) => p.message);
    if (pending.length > 0) found.unshift(`pending: ${pending.map((p) => p.name).join(", ")}`);
    return found;
  } finally {
    client.release();
  }
}
