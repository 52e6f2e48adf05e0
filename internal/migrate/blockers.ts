import type pg from "pg";
import { connect, disconnect } from "./connect.js";
import type { MigratorOptions } from "./options.js";

// Who is in the way: the sessions a waiting statement queues behind, the
// lock waits of the whole database (`migrate locks`), and the old
// transactions a concurrent index build will wait for.

/** How much of a session's statement is shown: enough to recognise it, too little to carry most literals. */
export const STATEMENT_CHARS = 120;

/** A session, as pg_stat_activity shows it. */
export interface Session {
  pid: number;
  user: string | null;
  application: string | null;
  /** active, idle in transaction, …; null for a role that may not see it. */
  state: string | null;
  /** Milliseconds since its transaction began; null outside a transaction. */
  transactionMs: number | null;
  /** Its current (or last) statement, cut at STATEMENT_CHARS. */
  statement: string | null;
  /** The statement was cut: it may hold literals, so it is never shown whole. */
  truncated: boolean;
}

// Blanked and cut in SQL: another session's statement reaches us (and our
// logs) with every quoted literal as '?' (a password in ALTER ROLE, a user's
// data in a WHERE) and no more than STATEMENT_CHARS of it.
const BLANKED = (a: string) => `regexp_replace(${a}.query, '''(''''|[^''])*''', '''?''', 'g')`;
const SESSION = (
  a: string,
) => `${a}.pid, ${a}.usename AS "user", ${a}.application_name AS application,
  ${a}.state, (extract(epoch FROM clock_timestamp() - ${a}.xact_start) * 1000)::int8 AS "transactionMs",
  left(${BLANKED(a)}, ${STATEMENT_CHARS}) AS statement, length(${BLANKED(a)}) > ${STATEMENT_CHARS} AS truncated`;

type Row = Omit<Session, "transactionMs"> & { transactionMs: string | null };
const session = (r: Row): Session => ({
  ...r,
  transactionMs: r.transactionMs === null ? null : Number(r.transactionMs),
});

/** The sessions `pid` waits for (pg_blocking_pids), oldest transaction first. */
export async function blockersOf(client: pg.ClientBase, pid: number): Promise<Session[]> {
  const { rows } = await client.query<Row>(
    `SELECT ${SESSION("a")} FROM unnest(pg_blocking_pids($1)) AS b(pid)
       JOIN pg_stat_activity a ON a.pid = b.pid ORDER BY a.xact_start NULLS LAST, a.pid`,
    [pid],
  );
  return rows.map(session);
}

/**
 * Where a wait's time is counted from: the lock request (pg_locks.waitstart,
 * PostgreSQL 14 and later), else the start of the waiting statement (it
 * waits no longer than that).
 */
export type WaitingFrom = "lock" | "statement";

/** One lock wait: the session that waits, since when, and one that it waits for. */
export interface LockWait {
  blocked: Session & { waitingMs: number | null; waitingFrom: WaitingFrom };
  blocking: Session;
}

/** pg_locks.waitstart is PostgreSQL 14's. */
const WAITSTART_SINCE = 140000;

/**
 * The design document's lock-wait query (blocked and blocking pid, user,
 * statement), written with pg_blocking_pids, which pairs a waiter with the
 * holders of the very lock it waits for (and those queued ahead of it) where
 * a join of pg_locks on the lock type alone pairs it with every session
 * holding any lock of that type. Plus how long each has waited and each
 * transaction's age; on a server before 14, which has no pg_locks.waitstart,
 * the wait counts from the waiting statement's start.
 */
export function lockWaitsQuery(serverVersionNum: number): string {
  const waiting =
    serverVersionNum >= WAITSTART_SINCE
      ? `(SELECT (extract(epoch FROM clock_timestamp() - min(l.waitstart)) * 1000)::int8
            FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted)`
      : "(extract(epoch FROM clock_timestamp() - a.query_start) * 1000)::int8";
  return `SELECT json_build_object('pid', w.pid, 'user', w."user", 'application', w.application,
              'state', w.state, 'transactionMs', w."transactionMs", 'statement', w.statement,
              'truncated', w.truncated, 'waitingMs', w."waitingMs") AS blocked,
            (SELECT row_to_json(h) FROM (SELECT ${SESSION("a")} FROM pg_stat_activity a
              WHERE a.pid = b.pid) h) AS blocking
       FROM (SELECT ${SESSION("a")}, ${waiting} AS "waitingMs", a.xact_start
               FROM pg_stat_activity a
              WHERE a.datname = current_database() AND a.wait_event_type = 'Lock'
                AND a.pid <> pg_backend_pid()) w
       CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS b(pid)
      ORDER BY w."waitingMs" DESC NULLS LAST, w.pid, b.pid`;
}

/** The lock waits of the database; `serverVersionNum` is read from the server unless given. */
export async function lockWaits(
  client: pg.ClientBase,
  serverVersionNum?: number,
): Promise<LockWait[]> {
  const version =
    serverVersionNum ??
    (await client.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v"))
      .rows[0]!.v;
  const waitingFrom: WaitingFrom = version >= WAITSTART_SINCE ? "lock" : "statement";
  const { rows } = await client.query<{
    blocked: Row & { waitingMs: string | null };
    blocking: Row;
  }>(lockWaitsQuery(version));
  return rows
    .filter((r) => r.blocking !== null)
    .map((r) => ({
      blocked: {
        ...session(r.blocked),
        waitingMs: r.blocked.waitingMs === null ? null : Number(r.blocked.waitingMs),
        waitingFrom,
      },
      blocking: session(r.blocking),
    }));
}

/** `migrate locks`: the lock waits of the database, on a connection of its own. */
export async function readLockWaits(opts: MigratorOptions): Promise<LockWait[]> {
  const client = await connect(opts.databaseUrl, opts.connectTimeoutMs, {
    replyTimeoutMs: opts.connectTimeoutMs,
  });
  try {
    return await lockWaits(client);
  } finally {
    await disconnect(client, opts.connectTimeoutMs);
  }
}

/**
 * Transactions in this database open for longer than `olderThanMs`, other
 * than ours: a concurrent index build waits for each to end before it can
 * finish (and meanwhile holds its table's SHARE UPDATE EXCLUSIVE lock).
 */
export async function oldTransactions(
  client: pg.ClientBase,
  olderThanMs: number,
): Promise<Session[]> {
  const { rows } = await client.query<Row>(
    `SELECT ${SESSION("a")} FROM pg_stat_activity a
      WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
        AND a.xact_start < clock_timestamp() - make_interval(secs => $1::float8 / 1000)
      ORDER BY a.xact_start, a.pid`,
    [olderThanMs],
  );
  return rows.map(session);
}

/** One line per session: `pid 123 (alice, app, idle in transaction, transaction 75s): UPDATE …`. */
export function describeSession(s: Session): string {
  const age =
    s.transactionMs === null ? "no transaction" : `transaction ${seconds(s.transactionMs)}`;
  const who = [s.user ?? "?", s.application || "-", s.state ?? "?", age].join(", ");
  const text = s.statement === null ? "(statement not visible to this role)" : oneLine(s.statement);
  return `pid ${s.pid} (${who}): ${text}${s.truncated ? " … (truncated)" : ""}`;
}

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`;
}

/** A statement on one line, as reports print statements. */
export const oneLine = (sql: string) => sql.replace(/\s+/g, " ").trim();
