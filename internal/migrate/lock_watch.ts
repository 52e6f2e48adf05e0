import type pg from "pg";
import { blockersOf, type Session } from "./blockers.js";
import { backendPid, connect, disconnect } from "./connect.js";
import type { MigratorOptions } from "./options.js";

// While a step runs, a second connection looks at whom the migrator waits
// for: once a statement is refused, it no longer waits, and
// pg_blocking_pids of it says nothing.

/**
 * Who held the lock: the last look that saw the statement waiting (else the
 * last look), and how long before the refusal reached us it was taken.
 */
export type BlockerSnapshot =
  { blockers: Session[]; takenAt: string; msBeforeFailure: number } | { unavailable: string };

/** The second connection that looks at who blocks the migrator while a step runs. */
export function lockWatch(opts: MigratorOptions, migrator: pg.Client) {
  const pid = backendPid(migrator);
  // Several looks per lock_timeout, so one lands while the statement waits.
  const everyMs = Math.min(1000, Math.max(50, Math.floor((opts.lockTimeoutMs || 5000) / 5)));
  let conn: Promise<pg.Client> | undefined;
  const client = () =>
    (conn ??= connect(opts.databaseUrl, opts.connectTimeoutMs, {
      replyTimeoutMs: opts.connectTimeoutMs,
    }));
  return {
    /** Runs `fn`, looking at pg_blocking_pids of the migrator until it settles. */
    async during<T>(fn: () => Promise<T>): Promise<{ result: T; seen: BlockerSnapshot }> {
      let done = false;
      let wake = () => {};
      let seen: BlockerSnapshot = { unavailable: "the statement ended before the first look" };
      let lastAt = 0;
      const pause = () =>
        new Promise<void>((r) => {
          const timer = setTimeout(r, everyMs);
          wake = () => (clearTimeout(timer), r());
        });
      const looking = (async () => {
        try {
          const c = await client();
          // Ended while connecting: a pause now would wait its full length,
          // nothing left to wake it, and hold the process open.
          if (done) return;
          for (await pause(); !done; await pause()) {
            const blockers = await blockersOf(c, pid);
            // A look answered after the statement ended sees it no longer waiting.
            if (done) break;
            // The refusal may reach the server before its answer reaches us,
            // so a look between them sees nobody: the last look that saw
            // someone is kept (its time says how stale it is).
            if (blockers.length === 0 && lastAt && "blockers" in seen && seen.blockers.length)
              continue;
            lastAt = Date.now();
            seen = { blockers, takenAt: new Date(lastAt).toISOString(), msBeforeFailure: 0 };
          }
        } catch (err) {
          if (!done) seen = { unavailable: `could not look: ${(err as Error).message}` };
        }
      })();
      try {
        const result = await fn();
        const ended = Date.now();
        return { result, seen: lastAt ? { ...seen, msBeforeFailure: ended - lastAt } : seen };
      } finally {
        // Not awaited: a look in flight on a stalled connection must not hold
        // up the migration; its answer is ignored.
        done = true;
        wake();
        void looking;
      }
    },
    async close() {
      const c = await conn?.catch(() => undefined);
      if (c) await disconnect(c, opts.connectTimeoutMs);
    },
  };
}

export type LockWatch = ReturnType<typeof lockWatch>;
