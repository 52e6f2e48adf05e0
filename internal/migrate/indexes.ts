import pg from "pg";
import type { IndexTarget } from "./analyse.js";

// A concurrent index build that is killed, cancelled or hits lock_timeout
// leaves an INVALID index behind: it takes writes but enforces nothing, and
// `CREATE INDEX CONCURRENTLY IF NOT EXISTS` then skips it. So invalid
// leftovers are dropped before a rerun, every result is checked before the
// migration is recorded, and status/validate/readiness report any that remain.

// Invalid indexes, less those a build is still working on: its table is held
// in SHARE UPDATE EXCLUSIVE by another session (pg_locks is readable by every
// role, where pg_stat_progress_create_index hides other roles' builds).
const BUILDING = `SELECT 1 FROM pg_locks l
  WHERE l.relation = i.indrelid AND l.mode = 'ShareUpdateExclusiveLock'
    AND l.granted AND l.pid <> pg_backend_pid()`;
const INVALID = `
  FROM pg_index i
  JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
  WHERE NOT i.indisvalid AND NOT EXISTS (${BUILDING})`;
const NAMES = `format('%I.%I', n.nspname, c.relname) AS name, format('%I.%I', tn.nspname, t.relname) AS "table"`;

// The table a target points at: the table itself, or the table of its index.
const TARGET_TABLE = `coalesce(to_regclass($1)::oid,
                               (SELECT indrelid FROM pg_index WHERE indexrelid = to_regclass($2)))`;

/** Every INVALID index in the database, `schema.index` with its table. */
export async function invalidIndexes(
  client: pg.ClientBase,
): Promise<{ name: string; table: string }[]> {
  const { rows } = await client.query<{ name: string; table: string }>(
    `SELECT ${NAMES} ${INVALID} AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`,
  );
  return rows;
}

/**
 * The INVALID indexes on a target's table, each with whether it is a
 * leftover of the target's own build (an index of the name it creates,
 * REINDEX's `_ccnew`/`_ccold` copies) that no other session still builds.
 */
async function invalidOn(
  client: pg.ClientBase,
  t: IndexTarget,
): Promise<{ oid: number; name: string; leftover: boolean }[]> {
  const { rows } = await client.query<{ oid: string; name: string; leftover: boolean }>(
    `SELECT i.indexrelid::int8 AS oid, format('%I.%I', n.nspname, c.relname) AS name,
            (c.relname = $3 OR c.relname ~ '_cc(new|old)[0-9]*$')
              AND NOT EXISTS (${BUILDING}) AS leftover
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT i.indisvalid AND i.indrelid = ${TARGET_TABLE}
      ORDER BY 2`,
    [t.table ?? null, t.index ?? null, t.creates ?? null],
  );
  return rows.map((r) => ({ ...r, oid: Number(r.oid) }));
}

/**
 * Before a migration with concurrent index statements runs: drops what an
 * earlier, interrupted attempt of them left INVALID (an index of the name
 * they create, REINDEX's `_ccnew`/`_ccold` copies), and returns the OIDs of
 * the INVALID indexes that remain on their tables: not this migration's
 * doing, so the check after it ignores them.
 */
export async function clearInvalidIndexes(
  client: pg.ClientBase,
  targets: IndexTarget[],
): Promise<{ dropped: string[]; invalidBefore: number[] }> {
  const dropped: string[] = [];
  const invalidBefore: number[] = [];
  for (const t of targets) {
    for (const r of await invalidOn(client, t)) {
      if (!r.leftover) {
        invalidBefore.push(r.oid);
        continue;
      }
      await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${r.name}`);
      dropped.push(r.name);
    }
  }
  return { dropped, invalidBefore };
}

/**
 * After a file with concurrent index statements failed or was stopped: the
 * leftovers of its builds that the next run's clearInvalidIndexes drops and
 * rebuilds, less those INVALID before it. Best effort: none when it cannot
 * look.
 */
export async function invalidLeft(
  client: pg.ClientBase,
  targets: IndexTarget[],
  invalidBefore: number[],
): Promise<string[]> {
  try {
    const names = new Set<string>();
    for (const t of targets)
      for (const r of await invalidOn(client, t))
        if (r.leftover && !invalidBefore.includes(r.oid)) names.add(r.name);
    return [...names];
  } catch {
    return [];
  }
}

/**
 * A statement for the end of a migration with concurrent index statements:
 * it fails (so the migration is not recorded) when an index on the tables
 * they touch became INVALID, or an index they create does not exist.
 */
export function indexCheckStatement(targets: IndexTarget[], invalidBefore: number[]): string {
  const array = (values: (string | undefined)[]) =>
    `ARRAY[${values
      .filter((v): v is string => v !== undefined)
      .map((name) => pg.escapeLiteral(name))
      .join(", ")}]::text[]`;
  const created = targets.filter((t) => t.creates && t.table);
  const expected = created.length
    ? `SELECT string_agg(format('%I', x.name), ', ') INTO missing
       FROM unnest(${array(created.map((t) => t.table))}, ${array(created.map((t) => t.creates))}) AS x(tbl, name)
       WHERE NOT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                         WHERE i.indrelid = to_regclass(x.tbl) AND c.relname = x.name);`
    : "";
  return `DO $migrate_check$
DECLARE bad text; missing text;
BEGIN
  WITH rels AS (
    SELECT to_regclass(t)::oid AS rel FROM unnest(${array(targets.map((t) => t.table))}) t
    UNION SELECT i.indrelid FROM unnest(${array(targets.map((t) => t.index))}) x JOIN pg_index i ON i.indexrelid = to_regclass(x))
  SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ') INTO bad
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE NOT i.indisvalid AND i.indrelid IN (SELECT rel FROM rels)
    AND i.indexrelid <> ALL (ARRAY[${invalidBefore.join(", ")}]::oid[]);
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'index % is INVALID after the concurrent build; the migration was not recorded', bad
      USING ERRCODE = '55000', HINT = 'the next migrate up drops an INVALID index of the name it builds and builds it again';
  END IF;
  ${expected}
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'index % was not built; the migration was not recorded', missing USING ERRCODE = '55000';
  END IF;
END
$migrate_check$`;
}
