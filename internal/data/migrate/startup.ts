import type pg from "pg";
import { up, type MigratorOptions } from "./runner.js";
import { readMigrations, type MigrationFile } from "./source.js";
import { compare, readApplied } from "./state.js";

/**
 * What the server does with migrations before serving, per
 * `data.database.migrate`: `up` applies pending ones under the shared lock,
 * `check` refuses to start while any is pending or an applied file changed,
 * `off` does neither.
 */
export async function migrateOnStart(
  mode: string,
  opts: MigratorOptions,
  pool: pg.Pool,
): Promise<void> {
  if (mode === "off") return;
  if (mode === "up") {
    await up(opts);
    return;
  }
  const lag = await schemaLag(await readMigrations(opts.dir), pool);
  if (lag.length > 0) {
    throw new Error(
      `migrate: check: ${lag.join("; ")}; run \`migrate up\` (see \`migrate status\`)`,
    );
  }
}

/** Readiness: fails, naming them, while migrations are pending or applied files changed. */
export function migrationReadiness(dir: string, pool: pg.Pool): () => Promise<void> {
  const files = readMigrations(dir);
  // A folder that cannot be read reports through readiness, not as a crash.
  files.catch(() => undefined);
  return async () => {
    const lag = await schemaLag(await files, pool);
    if (lag.length > 0) throw new Error(lag.join("; "));
  };
}

/** How the database's schema is behind the files: pending migrations first, then errors. */
async function schemaLag(files: MigrationFile[], pool: pg.Pool): Promise<string[]> {
  const client = await pool.connect();
  try {
    const { pending, problems } = compare(files, await readApplied(client));
    const found = problems.filter((p) => p.severity === "error").map((p) => p.message);
    if (pending.length > 0) found.unshift(`pending: ${pending.map((p) => p.name).join(", ")}`);
    return found;
  } finally {
    client.release();
  }
}
