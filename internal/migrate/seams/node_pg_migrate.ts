/**
 * What this tool shares with node-pg-migrate, so that its CLI and ours
 * exclude each other and read each other's state: its advisory lock key and
 * its state table. We write every record ourselves (with a checksum it does
 * not know) and load nothing of the library at run time; these values are
 * copies of its own, and test/unit/node_pg_migrate_seam.test.ts fails when the
 * installed library stops matching them or leaves WRITTEN_FOR.
 */

/** The release range these values were read from (package.json declares the same). */
export const WRITTEN_FOR = "^9.0.0";

/** Its PG_MIGRATE_LOCK_ID: the session advisory lock its runner takes for the whole database. */
export const PG_MIGRATE_LOCK_ID = 7241865325823964;

/** Its default state table, where its CLI reads and writes one row per applied migration. */
export const MIGRATIONS_TABLE = "public.pgmigrations";

/** The columns it creates the table with; it reads `name ORDER BY run_on, id`. */
export const MIGRATIONS_TABLE_COLUMNS =
  "id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL";
