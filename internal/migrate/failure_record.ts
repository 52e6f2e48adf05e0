import pg from "pg";
import { connect, disconnect } from "./connect.js";
import type { StepFailure } from "./failure.js";
import type { MigratorOptions } from "./options.js";

// Failed steps, kept in the database beside pgmigrations. A deploy script's
// failed run is otherwise known only to whoever read its output, and a server
// whose start-up run failed exits before Prometheus scrapes it. A failure
// stands until a later step of the same migration succeeds (resolved_at), and
// only while the migration is as the failure left it (an up not applied, a
// down still applied): both read from the database alone, so an instance of
// the previous release, without the new file, counts it too.

export const FAILURES_TABLE = "public.migrate_failures";

/** The newest unresolved failure of one migration in one direction. */
export interface RecordedFailure {
  name: string;
  direction: "up" | "down";
  failedAt: Date;
  /** `file:line` of the failing statement, or the file. */
  at: string;
  /** SQLSTATE; null when the connection failed rather than a statement. */
  sqlstate: string | null;
}

/**
 * Records `f`, on `client` or, when its connection was lost, on a new one.
 * Not a failure, and not recorded: a step found done after a lost connection,
 * one refused before its first statement, one stopped by a signal. The
 * failure stays the news: a record that cannot be written (the server gone,
 * no privilege) is logged, not thrown. PostgreSQL's message is not kept: it
 * may quote a value from the data.
 */
export async function recordFailure(
  opts: Pick<MigratorOptions, "databaseUrl" | "connectTimeoutMs" | "operator" | "log">,
  client: pg.ClientBase,
  f: StepFailure,
  { interrupted }: { interrupted: boolean },
): Promise<void> {
  if (interrupted || f.notStarted || doneAfterAll(f)) return;
  let fresh: pg.Client | undefined;
  try {
    if (f.connectionLost)
      fresh = await connect(opts.databaseUrl, opts.connectTimeoutMs, {
        replyTimeoutMs: opts.connectTimeoutMs,
      });
    const on = fresh ?? client;
    await on.query(
      `CREATE TABLE IF NOT EXISTS ${FAILURES_TABLE} (
         id serial PRIMARY KEY,
         failed_at timestamp NOT NULL,
         migration varchar(255) NOT NULL,
         direction text NOT NULL CHECK (direction IN ('up', 'down')),
         at text NOT NULL,
         sqlstate char(5),
         db_user text NOT NULL,
         operator text,
         resolved_at timestamp
       );
       CREATE INDEX IF NOT EXISTS migrate_failures_standing
         ON ${FAILURES_TABLE} (migration) WHERE resolved_at IS NULL`,
    );
    await on.query(
      `INSERT INTO ${FAILURES_TABLE} (failed_at, migration, direction, at, sqlstate, db_user, operator)
       VALUES (now() AT TIME ZONE 'UTC', $1, $2, $3, $4, session_user, $5)`,
      [f.name, f.direction, f.at, f.code ?? null, opts.operator ?? null],
    );
  } catch (err) {
    opts.log.warn(
      { migration: f.name, err: (err as Error).message },
      "could not record the failure in migrate_failures",
    );
  } finally {
    if (fresh) await disconnect(fresh, opts.connectTimeoutMs);
  }
}

// Read back after a lost connection: an up is done when recorded, a down when not.
function doneAfterAll(f: StepFailure): boolean {
  const o = f.outcome;
  if (!o || !("recorded" in o)) return false;
  return f.direction === "up" ? o.recorded : !o.recorded;
}

/**
 * Marks the failures of `name` resolved: a step of it has just succeeded.
 * Best effort: what stands is also judged by whether the migration is applied.
 */
export async function resolveFailures(
  client: pg.ClientBase,
  name: string,
  log: MigratorOptions["log"],
): Promise<void> {
  await client
    .query(
      `UPDATE ${FAILURES_TABLE} SET resolved_at = now() AT TIME ZONE 'UTC'
        WHERE migration = ${pg.escapeLiteral(name)} AND resolved_at IS NULL`,
    )
    .catch((err: Error) =>
      log.warn({ migration: name, err: err.message }, "could not mark its failures resolved"),
    );
}

/**
 * The newest unresolved failure of each migration and direction: none before
 * the table exists, undefined when this role may not read it.
 */
export async function readFailures(client: pg.ClientBase): Promise<RecordedFailure[] | undefined> {
  const { rows } = await client.query<{ state: "absent" | "ok" | "denied" }>(
    `SELECT CASE WHEN to_regclass($1) IS NULL THEN 'absent'
                 WHEN has_table_privilege(to_regclass($1), 'SELECT') THEN 'ok'
                 ELSE 'denied' END AS state`,
    [FAILURES_TABLE],
  );
  if (rows[0]!.state === "denied") return undefined;
  if (rows[0]!.state === "absent") return [];
  const failures = await client.query<RecordedFailure>(
    `SELECT DISTINCT ON (migration, direction) migration AS name, direction,
            failed_at AT TIME ZONE 'UTC' AS "failedAt", at, sqlstate
       FROM ${FAILURES_TABLE} WHERE resolved_at IS NULL
      ORDER BY migration, direction, id DESC`,
  );
  return failures.rows;
}

/** Of `failures`, those that stand: an up failure of a migration not applied, a down failure of one still applied. */
export function standing(
  failures: readonly RecordedFailure[],
  applied: ReadonlySet<string>,
): RecordedFailure[] {
  return failures.filter((f) => (f.direction === "up") !== applied.has(f.name));
}
