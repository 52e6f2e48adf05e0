import type pg from "pg";

/** Sessions of this database waiting on a lock, or running, past which background jobs back off. */
const BUSY_WAITING = 1;
const BUSY_ACTIVE = 16;

/**
 * Runs `work` holding the session-level advisory lock `lock` on a connection
 * of its own from `direct` (Data.direct: through a pooler in transaction
 * mode the lock would stay with a server connection other clients are
 * handed, and two instances would both hold it): false at once when another
 * instance holds it. The lock goes with the connection if this process dies.
 */
export async function exclusively(
  direct: pg.Pool,
  lock: number,
  work: () => Promise<void>,
): Promise<boolean> {
  const client = await direct.connect();
  try {
    const { rows } = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [
      lock,
    ]);
    if (!rows[0]!.ok) return false;
    try {
      await work();
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [lock]).catch(() => undefined);
    }
    return true;
  } finally {
    client.release();
  }
}

/** The database is busy (sessions waiting on locks, many active queries): a job backs off. */
export async function databaseBusy(pool: pg.Pool): Promise<boolean> {
  const { rows } = await pool.query<{ waiting: number; active: number }>(
    `SELECT count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS waiting,
            count(*) FILTER (WHERE state = 'active')::int AS active
       FROM pg_stat_activity WHERE datname = current_database()`,
  );
  return rows[0]!.waiting >= BUSY_WAITING || rows[0]!.active >= BUSY_ACTIVE;
}
