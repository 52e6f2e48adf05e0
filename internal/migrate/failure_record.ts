import type pg from "pg";
import { connect, disconnect } from "./connect.js";
import type { StepFailure } from "./failure.js";
import type { MigratorOptions } from "./options.js";
import type { StatusEntry } from "./state.js";

// Failed steps, kept in the database beside pgmigrations. A deploy script's
// failed run is otherwise known only to whoever read its output, and a server
// whose start-up run failed exits before Prometheus scrapes it: from this
// table every instance reports those still standing (migrations_failed) and
// `status` names the last failure of a migration still to do. Rows are only added.

export const FAILURES_TABLE = "public.migrate_failures";

/** The newest recorded failure of one migration in one direction. */
export interface RecordedFailure {
  name: string;
  direction: "up" | "down";
  failedAt: Date;
  /** `file:line` of the failing statement. */
  at: string;
  /** SQLSTATE; absent when the connection failed rather than a statement. */
  sqlstate: string | null;
}

/**
 * Records `f`, on `client` or, when its connection was lost, on a new one.
 * The failure stays the news: a record that cannot be written (the server
 * gone) is logged, not thrown. A step found committed after all is no failure.
 * PostgreSQL's message is not kept: it may quote a value from the data.
 */
export async function recordFailure(
  opts: Pick<MigratorOptions, "databaseUrl" | "connectTimeoutMs" | "operator" | "log">,
  client: pg.ClientBase,
  f: StepFailure,
): Promise<void> {
  if (f.outcome && "recorded" in f.outcome && f.outcome.recorded) return;
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
         operator text
       )`,
    );
    await on.query(
      `INSERT INTO ${FAILURES_TABLE} (failed_at, migration, direction, at, sqlstate, db_user, operator)
       VALUES (now() AT TIME ZONE 'UTC', $1, $2, $3, $4, session_user, $5)`,
      [f.name, f.direction, f.at, sqlstate(f.code), opts.operator ?? null],
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

const sqlstate = (code: string | undefined) => (code && /^[0-9A-Z]{5}$/.test(code) ? code : null);

/** The newest failure of each migration and direction; none before the table exists. */
export async function readFailures(client: pg.ClientBase): Promise<RecordedFailure[]> {
  if (!(await exists(client))) return [];
  const { rows } = await client.query<RecordedFailure>(
    `SELECT DISTINCT ON (migration, direction) migration AS name, direction,
            failed_at AT TIME ZONE 'UTC' AS "failedAt", at, sqlstate
       FROM ${FAILURES_TABLE} ORDER BY migration, direction, id DESC`,
  );
  return rows;
}

/**
 * Of `failures`, those that still stand: an up failure of a migration still
 * pending, a down failure of one still applied since before it failed.
 */
export function standing(
  failures: RecordedFailure[],
  entries: Pick<StatusEntry, "name" | "state" | "runOn">[],
): RecordedFailure[] {
  const state = new Map(entries.map((e) => [e.name, e]));
  return failures.filter((f) => {
    const e = state.get(f.name);
    if (f.direction === "up") return e?.state === "pending";
    return e?.state === "applied" && e.runOn !== undefined && e.runOn < f.failedAt;
  });
}

async function exists(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [
    FAILURES_TABLE,
  ]);
  return rows[0]!.ok;
}
