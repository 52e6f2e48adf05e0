import type pg from "pg";
import type { Outcome } from "./failure.js";
import { cancelBackend } from "./cancel.js";
import { abandon, backendPid, connect, disconnect } from "./connect.js";
import { acquireLock, StoppedBeforeStartError, releaseLock } from "./lock.js";
import type { Step } from "./plan.js";
import type { MigratorOptions } from "./options.js";
import { readApplied } from "./state.js";

// The migrator's connection: the lock it holds, how long it waits, what the
// server does with a session its migrator stopped talking to, and what is
// true after it is lost.

/**
 * How long the client waits for the reply to a query of `statements`
 * statements: what the server's statement_timeout allows each, plus the
 * connect timeout for the way there and back. Unbounded with
 * statement_timeout off: the operator asked statements to take their time.
 */
export function replyTimeoutMs(
  opts: Pick<MigratorOptions, "statementTimeoutMs" | "connectTimeoutMs">,
  statements: number,
): number | undefined {
  if (opts.statementTimeoutMs <= 0) return undefined;
  return opts.statementTimeoutMs * Math.max(1, statements) + opts.connectTimeoutMs;
}

/** After this long without a word from its migrator, the server ends the session (and its lock). */
export function sessionIdleMs(opts: Pick<MigratorOptions, "connectTimeoutMs">): number {
  return Math.max(opts.connectTimeoutMs, 30_000);
}

/**
 * After the connection was lost during a step: ends the old session if it
 * still runs (a stalled peer), so that what is read is final and the lock is
 * free, then reads whether the step is recorded. Bounded by the connect
 * timeout at each wait.
 */
export async function settle(opts: MigratorOptions, lost: pg.Client, s: Step): Promise<Outcome> {
  const pid = backendPid(lost);
  abandon(lost);
  let client: pg.Client;
  try {
    client = await connect(opts.databaseUrl, opts.connectTimeoutMs, {
      replyTimeoutMs: opts.connectTimeoutMs,
    });
  } catch (err) {
    return { unknown: `could not reconnect to check: ${(err as Error).message}` };
  }
  try {
    if (!(await endSession(client, pid, opts.connectTimeoutMs)))
      return { unknown: `the lost session (pid ${pid}) is still running` };
    const recorded = (await readApplied(client)).some((a) => a.name === s.name);
    opts.log.warn(
      { migration: s.name, recorded },
      "connection lost mid-migration; state read back",
    );
    return { recorded };
  } catch (err) {
    return { unknown: `could not read the state back: ${(err as Error).message}` };
  } finally {
    await disconnect(client, opts.connectTimeoutMs);
  }
}

/**
 * Ends session `pid`, seen from `client`, if it still runs (a stalled peer
 * keeps a session alive after its client dropped the connection), and waits
 * at most `waitMs` for it to go: whatever it was running has then committed
 * or rolled back. False when it is still there.
 */
export async function endSession(client: pg.Client, pid: number, waitMs: number): Promise<boolean> {
  const alive = async () =>
    (
      await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1",
        [pid],
      )
    ).rows[0]!.n > 0;
  if (!(await alive())) return true;
  await client.query("SELECT pg_terminate_backend($1)", [pid]);
  const deadline = Date.now() + waitMs;
  while (await alive()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/**
 * Connects, takes the migration lock (polling, bounded by lockWait), sets
 * the session's bounds, runs `fn`, and always releases and disconnects.
 * From the lock on, `signal` cancels the statement in flight, whichever it
 * is (a step's, or a read or bookkeeping statement waiting on a lock).
 */
export async function locked<T>(
  opts: MigratorOptions,
  signal: AbortSignal | undefined,
  fn: (client: pg.Client, lockWaitMs: number) => Promise<T>,
): Promise<T> {
  const client = await connect(opts.databaseUrl, opts.connectTimeoutMs, {
    replyTimeoutMs: replyTimeoutMs(opts, 1),
  });
  try {
    const lockWaitMs = await acquireLock(
      client,
      opts.lockWaitMs,
      () => opts.log.info("another migration holds the lock; waiting"),
      signal,
    );
    const cancel = () => void cancelBackend(opts, client);
    signal?.addEventListener("abort", cancel);
    try {
      const ms = (n: number) => Math.max(0, Math.floor(n));
      await client.query(
        `SET lock_timeout = ${ms(opts.lockTimeoutMs)}; SET statement_timeout = ${ms(opts.statementTimeoutMs)}`,
      );
      // A migrator killed mid-statement must not leave its backend running,
      // holding the lock (PostgreSQL 14 and later).
      await client.query("SET client_connection_check_interval = 1000").catch(() => undefined);
      // A migrator that stops talking (a stalled proxy keeps its connection
      // open) must not hold the lock for ever: the server ends such a session.
      const idle = `${sessionIdleMs(opts)}ms`;
      await client.query(`SET idle_in_transaction_session_timeout = '${idle}'`);
      await client.query(`SET idle_session_timeout = '${idle}'`).catch(() => undefined);
      // Signalled as the lock was taken, or while setting up (a cancel that
      // landed on a SET, its error ignored, is spent): nothing starts.
      if (signal?.aborted)
        throw new StoppedBeforeStartError(
          `interrupted by ${String(signal.reason)} as the migration lock was taken; nothing was changed`,
        );
      return await fn(client, lockWaitMs);
    } finally {
      signal?.removeEventListener("abort", cancel);
      await releaseLock(client).catch(() => undefined);
    }
  } finally {
    await disconnect(client, opts.connectTimeoutMs);
  }
}
