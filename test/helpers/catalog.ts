import pg from "pg";
import { expect } from "vitest";

/**
 * The project's schema as PostgreSQL's catalog describes it: tables and
 * columns, indexes, constraints, triggers, functions, views and comments, as
 * sorted text lines. Two databases with equal snapshots have equal schemas.
 */
export async function catalogSnapshot(
  url: string,
  { includeMigrationTable = false } = {},
): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // The bookkeeping tables: pgmigrations, the consent record, instances, backfills.
    const bookkeeping = "'^(pgmigrations|migrate_consents|migrate_instances|migrate_backfills)'";
    const skip = includeMigrationTable ? "" : `AND c.relname !~ ${bookkeeping}`;
    const queries = [
      `SELECT 'relation ' || c.relname || ' ' || c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' ${skip}`,
      `SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
          || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
          || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped ${skip}`,
      `SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
        ${includeMigrationTable ? "" : `AND tablename !~ ${bookkeeping}`}`,
      `SELECT 'constraint ' || c.conname || ' ' || pg_get_constraintdef(c.oid) FROM pg_constraint c
        JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'
        ${includeMigrationTable ? "" : `AND c.conname !~ ${bookkeeping}`}`,
      `SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE NOT t.tgisinternal`,
      `SELECT 'function ' || pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public'`,
      `SELECT 'view ' || viewname || ' ' || definition FROM pg_views WHERE schemaname = 'public'`,
      `SELECT 'comment ' || c.relname || ' ' || coalesce(a.attname, '') || ' ' || d.description
        FROM pg_description d JOIN pg_class c ON c.oid = d.objoid
        LEFT JOIN pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`,
    ];
    const lines: string[] = [];
    for (const q of queries) {
      const { rows } = await client.query<{ "?column?": string }>(q);
      lines.push(...rows.map((r) => Object.values(r)[0] as string));
    }
    return lines.sort();
  } finally {
    await client.end();
  }
}

export async function query<T extends pg.QueryResultRow>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

/**
 * Waits (up to a minute) until another session of the database runs a
 * statement containing `text` (other test files run the same texts in
 * databases of their own, at the same time).
 */
export async function running(url: string, text: string): Promise<void> {
  await expect
    .poll(
      () =>
        query(
          url,
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE strpos(query, $1) > 0
             AND state = 'active' AND datname = current_database() AND pid <> pg_backend_pid()`,
          [text],
        ),
      { timeout: 60_000, interval: 100 },
    )
    .toEqual([{ n: 1 }]);
}
