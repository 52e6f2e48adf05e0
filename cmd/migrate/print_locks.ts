import {
  describeSession,
  seconds,
  type LockWait,
  type Session,
} from "../../internal/migrate/blockers.js";
import type { LockAttempt } from "../../internal/migrate/retry.js";

// Who was in the way, as `up` reports it and `migrate locks` lists it.

type Write = (text: string) => void;

/** `migrate locks`: one block per waiting session, its blockers under it. */
export function lockWaits(write: Write, waits: LockWait[]): void {
  if (waits.length === 0) return write("no session waits for a lock\n");
  let last: number | undefined;
  for (const w of waits) {
    if (w.blocked.pid !== last) {
      // Before PostgreSQL 14 the wait counts from its statement's start: a bound.
      const bound = w.blocked.waitingFrom === "statement" ? "at most " : "";
      const waited =
        w.blocked.waitingMs === null ? "" : ` for ${bound}${seconds(w.blocked.waitingMs)}`;
      write(`waiting${waited}: ${describeSession(w.blocked)}\n`);
      last = w.blocked.pid;
    }
    write(`  blocked by ${describeSession(w.blocking)}\n`);
  }
  const blocked = new Set(waits.map((w) => w.blocked.pid)).size;
  write(`${blocked} session(s) waiting (statements cut at 120 characters)\n`);
}

/** Old transactions a concurrent index build waited for (or was refused for). */
export function oldTransactions(write: Write, name: string, old: Session[] | undefined): void {
  if (!old?.length) return;
  write(
    `old      transactions open when ${name} built an index concurrently (it waits for them):\n`,
  );
  for (const s of old) write(`           ${describeSession(s)}\n`);
}

/** Each try refused by lock_timeout, with who held the lock. */
export function lockAttempts(
  write: Write,
  attempts: LockAttempt[] | undefined,
  why?: string,
): void {
  for (const a of attempts ?? []) {
    const next = a.retryInMs === undefined ? "" : `; tried again after ${a.retryInMs} ms`;
    write(`         lock_timeout, attempt ${a.attempt} at ${a.at}${next}\n`);
    const b = a.blockers;
    if ("unavailable" in b) {
      write(`           blockers unknown: ${b.unavailable}\n`);
      continue;
    }
    const when = `seen at ${b.takenAt}, ${b.msBeforeFailure} ms before the refusal`;
    if (b.blockers.length === 0) write(`           no blocker ${when}\n`);
    else write(`           held by (${when}):\n`);
    for (const s of b.blockers) write(`             ${describeSession(s)}\n`);
  }
  if (why && attempts?.length) write(`         not tried again: ${why}\n`);
}
