import type pg from "pg";
import type { MigrationFile } from "./source.js";

/** golang-migrate's own record: one row, the last version applied and whether it failed halfway. */
export interface GolangMigrateState {
  version: bigint | undefined;
  dirty: boolean;
}

/** The database's state forbids adopting or baselining it. */
export class AdoptionRefusedError extends Error {
  override name = "AdoptionRefusedError";
}

/**
 * golang-migrate's `schema_migrations (version bigint, dirty boolean)` in the
 * current schema, if there is one of that shape (other tools use the same
 * table name with other columns).
 */
export async function readGolangMigrate(
  client: pg.ClientBase,
): Promise<GolangMigrateState | undefined> {
  const { rows: shape } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_attribute
     WHERE attrelid = to_regclass('schema_migrations') AND NOT attisdropped
       AND ((attname = 'version' AND atttypid = 'int8'::regtype) OR (attname = 'dirty' AND atttypid = 'bool'::regtype))`,
  );
  if (shape[0]?.n !== 2) return undefined;
  const { rows } = await client.query<{ version: string; dirty: boolean }>(
    "SELECT version::text, dirty FROM schema_migrations ORDER BY version DESC LIMIT 1",
  );
  if (rows.length === 0) return { version: undefined, dirty: false };
  return { version: BigInt(rows[0]!.version), dirty: rows[0]!.dirty };
}

/**
 * The files a database migrated by golang-migrate already has: every version
 * up to its recorded one. Refuses a dirty state and a version no file has.
 */
export function adoptable(files: MigrationFile[], state: GolangMigrateState): MigrationFile[] {
  const { version } = state;
  if (state.dirty) {
    throw new AdoptionRefusedError(
      `golang-migrate's schema_migrations says version ${version} is dirty: that migration failed halfway. ` +
        `Nothing was changed. Inspect the schema and finish or undo that migration by hand, then mark it clean ` +
        `(UPDATE schema_migrations SET dirty = false, with version set to the last migration fully applied) and run migrate up again`,
    );
  }
  if (version === undefined) return [];
  if (!files.some((f) => f.version === version)) {
    throw new AdoptionRefusedError(
      `golang-migrate's schema_migrations is at version ${version}, but no migration file has that version; nothing was changed`,
    );
  }
  return files.filter((f) => f.version <= version);
}
