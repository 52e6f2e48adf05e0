import type pg from "pg";
import { PG_MIGRATE_LOCK_ID } from "./seams/node_pg_migrate.js";

/** Stopped by a signal before the first step (waiting for the lock, say): nothing was applied. */
export class StoppedBeforeStartError extends Error {
  override name = "StoppedBeforeStartError";
}

/** Another migrator held the lock for longer than we were told to wait. */
export class LockTimeoutError extends Error {
  override name = "LockTimeoutError";
}

const POLL_MS = 100;

/**
 * Takes node-pg-migrate's session advisory lock (its key, so its own CLI and
 * this tool exclude each other), polling a try-lock outside any transaction:
 * a waiter that held a transaction would deadlock with a CREATE INDEX
 * CONCURRENTLY run by the holder. Resolves with the milliseconds waited.
 */
export async function acquireLock(
  client: pg.ClientBase,
  waitMs: number,
  onWait?: () => void,
  signal?: AbortSignal,
): Promise<number> {
  const started = Date.now();
  let told = false;
  for (;;) {
    if (signal?.aborted) {
      const when = told
        ? "while waiting for the migration lock"
        : "before taking the migration lock";
      throw new StoppedBeforeStartError(
        `interrupted by ${String(signal.reason)} ${when}; nothing was changed`,
      );
    }
    const { rows } = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [
      PG_MIGRATE_LOCK_ID,
    ]);
    if (rows[0]?.ok) return Date.now() - started;
    if (!told) {
      onWait?.();
      told = true;
    }
    if (Date.now() - started >= waitMs) {
      throw new LockTimeoutError(
        `another migration held the lock for more than ${Math.round(waitMs / 1000)}s; nothing was changed (raise --lock-wait, or find the holder in pg_locks where objid = ${PG_MIGRATE_LOCK_ID % 2 ** 32})`,
      );
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

export async function releaseLock(client: pg.ClientBase): Promise<void> {
  await client.query("SELECT pg_advisory_unlock($1)", [PG_MIGRATE_LOCK_ID]);
}
