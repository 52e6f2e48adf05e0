import pg from "pg";
import type { Allow } from "./lint/consent.js";
import { MIGRATIONS_TABLE } from "./seams/node_pg_migrate.js";

// Where consent is kept once a migration runs: a side table, not more columns
// on node-pg-migrate's pgmigrations. Its rows outlive a `down` (the row in
// pgmigrations goes; what was consented to, by whom, stays as history) and
// point at the pgmigrations row of the run they were given for.

export const CONSENTS_TABLE = "public.migrate_consents";

/** What a step carries into its record: the markers that allowed it, and who ran it. */
export interface StepConsent {
  allows: Allow[];
  /** --operator or MIGRATE_OPERATOR: a person's name, beside the database user. */
  operator: string | undefined;
}

/** A consent as recorded: rule, marker line and reason; database user, operator, time (UTC). */
export interface RecordedConsent {
  rule: string;
  line: number;
  reason: string;
  dbUser: string;
  operator: string | null;
  at: Date;
}

/** Creates the side table (made only when a run first records consent). */
export async function ensureConsentTable(client: pg.ClientBase): Promise<void> {
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${CONSENTS_TABLE} (
       id serial PRIMARY KEY,
       migration_id integer NOT NULL,
       name varchar(255) NOT NULL,
       rule text NOT NULL,
       line integer NOT NULL,
       reason text NOT NULL,
       db_user text NOT NULL,
       operator text,
       consented_at timestamp NOT NULL
     )`,
  );
}

/**
 * Wraps the INSERT that records an applied step so that one statement also
 * records its consents: both land with the migration or neither does.
 */
export function withConsent(insert: string, name: string, consent: StepConsent): string {
  const rows = consent.allows
    .map((a) => `(${pg.escapeLiteral(a.rule)}, ${a.line}, ${pg.escapeLiteral(a.reason)})`)
    .join(", ");
  const operator = consent.operator === undefined ? "NULL" : pg.escapeLiteral(consent.operator);
  return (
    `WITH applied AS (${insert} RETURNING id) ` +
    `INSERT INTO ${CONSENTS_TABLE} (migration_id, name, rule, line, reason, db_user, operator, consented_at) ` +
    `SELECT applied.id, ${pg.escapeLiteral(name)}, c.rule, c.line, c.reason, session_user, ${operator}, now() AT TIME ZONE 'UTC' ` +
    `FROM applied, (VALUES ${rows}) AS c(rule, line, reason)`
  );
}

/** The consents of the migrations applied now, by name; none before the table exists. */
export async function readConsents(client: pg.ClientBase): Promise<Map<string, RecordedConsent[]>> {
  const byName = new Map<string, RecordedConsent[]>();
  const exists = await client.query<{ ok: boolean }>(
    "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AS ok",
    [CONSENTS_TABLE, MIGRATIONS_TABLE],
  );
  if (!exists.rows[0]?.ok) return byName;
  const { rows } = await client.query<{
    name: string;
    rule: string;
    line: number;
    reason: string;
    db_user: string;
    operator: string | null;
    at: Date;
  }>(
    `SELECT c.name, c.rule, c.line, c.reason, c.db_user, c.operator, c.consented_at AT TIME ZONE 'UTC' AS at
       FROM ${CONSENTS_TABLE} c JOIN ${MIGRATIONS_TABLE} m ON m.id = c.migration_id AND m.name = c.name
      ORDER BY c.id`,
  );
  for (const r of rows) {
    const list = byName.get(r.name) ?? [];
    list.push({
      rule: r.rule,
      line: r.line,
      reason: r.reason,
      dbUser: r.db_user,
      operator: r.operator,
      at: r.at,
    });
    byName.set(r.name, list);
  }
  return byName;
}
