import { setTimeout as wait } from "node:timers/promises";
import type pg from "pg";
import type { Script } from "./analyse.js";
import { applyStep, type StepFailure, type StepResult } from "./apply.js";
import { describeSession } from "./blockers.js";
import { emit } from "./events.js";
import type { BlockerSnapshot, LockWatch } from "./lock_watch.js";
import { olderThan, refusal } from "./old_transactions.js";
import type { MigratorOptions } from "./options.js";
import type { Step } from "./plan.js";
import { replyTimeoutMs } from "./session.js";
import { StoppedBeforeStartError } from "./lock.js";

// A step refused by lock_timeout is tried again, later, where that is safe;
// every refusal names who held the lock, as seen while the statement waited.

/** lock_not_available: lock_timeout (or NOWAIT) refused the lock. */
export const LOCK_NOT_AVAILABLE = "55P03";

const FIRST_DELAY_MS = 500;
const FACTOR = 2;
// Bounds a single wait when lock_attempts is raised far above its default,
// well under the 30 s idle_session_timeout the migrator's session sets
// (session.ts): a wait must never end the session and so free the lock.
const MAX_DELAY_MS = 10_000;

/** One refused try of a step. */
export interface LockAttempt {
  attempt: number;
  at: string;
  blockers: BlockerSnapshot;
  /** Wait before the next try; absent on the last. */
  retryInMs?: number;
}

/** The delay before try `attempt + 1`: 500ms doubling, bounded, half of it random (jitter). */
export function backoffMs(attempt: number, random = Math.random): number {
  const full = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * FACTOR ** (attempt - 1));
  return Math.round(full / 2 + (full / 2) * random());
}

/**
 * Why a step refused by lock_timeout may not be tried again, or undefined
 * when it may. A transactional file rolled back whole. A file outside a
 * transaction may be tried again only if the refused statement was its
 * first: a refused statement has no effect of its own (a concurrent index
 * build's INVALID leftover is dropped before the next try, as before any
 * run), but a statement after one that completed would run on a database
 * the file has already changed, and the completed ones would run twice.
 */
export function notRetryable(f: StepFailure): string | undefined {
  if (f.connectionLost) return "the connection was lost";
  if (f.transactional) return undefined;
  if (f.statementsApplied > 0 || f.ownTransactions?.finalThrough)
    return "statements of it outside a transaction had already run";
  return undefined;
}

/**
 * applyStep, tried again after a lock_timeout refusal where notRetryable
 * allows, up to opts.lockAttempts in all; each refusal is logged with its
 * blockers and kept in the failure. Before a concurrent index build, old
 * transactions are named (or the step refused, per opts.oldTransactions).
 */
export async function applyPatiently(
  opts: MigratorOptions,
  client: pg.Client,
  s: Step,
  script: Script,
  watch: LockWatch,
  signal?: AbortSignal,
  /** What ends the step's transaction instead of its record (a backfill's head: its start). */
  record?: string,
): Promise<{ ok: StepResult } | { failed: StepFailure }> {
  const old =
    script.transactional || script.indexes.length === 0 ? [] : await olderThan(opts, client);
  // Signalled during the reads before it (a cancel that missed them): the
  // step is not begun, and says so (applySteps lists it as not started).
  if (signal?.aborted)
    throw new StoppedBeforeStartError(`stopped by ${String(signal.reason)} before ${s.name} began`);
  if (old.length > 0) {
    opts.log.warn(
      { migration: s.name, olderThanMs: opts.oldTransactionAgeMs, transactions: old },
      `the concurrent index build waits for ${old.length} old transaction(s)`,
    );
    if (opts.oldTransactions === "refuse") return { failed: refusal(s, script, old, opts) };
  }
  const attempts: LockAttempt[] = [];
  const dropped: string[] = [];
  const firstTry = performance.now();
  for (let attempt = 1; ; attempt++) {
    const tryStarted = performance.now();
    const { result, seen } = await watch.during(() =>
      applyStep(client, s, script, (n) => replyTimeoutMs(opts, n), record, signal),
    );
    dropped.push(...("ok" in result ? result.ok.dropped : result.failed.dropped));
    if ("ok" in result) {
      result.ok.dropped = dropped;
      if (attempts.length) result.ok.lockAttempts = attempts;
      result.ok.lockRetryMs = Math.round(tryStarted - firstTry);
      if (old.length) result.ok.oldTransactions = old;
      return result;
    }
    const f = result.failed;
    f.dropped = dropped;
    if (old.length) f.oldTransactions = old;
    if (f.code !== LOCK_NOT_AVAILABLE) {
      // Refused before, failed otherwise now: the report keeps the refusals.
      if (attempts.length) f.lockAttempts = attempts;
      return result;
    }
    const at = new Date().toISOString();
    const why =
      notRetryable(f) ??
      (opts.lockAttempts <= 1
        ? "retry is off"
        : attempt >= opts.lockAttempts
          ? `${attempt} attempts made`
          : signal?.aborted
            ? "interrupted"
            : undefined);
    if (why !== undefined) {
      emit(opts, { event: "lock_refused", name: s.name, attempt, blockers: seen });
      attempts.push({ attempt, at, blockers: seen });
      f.lockAttempts = attempts;
      f.notRetried = why;
      if (signal?.aborted && why === "interrupted") f.stopped = true;
      return result;
    }
    const retryInMs = backoffMs(attempt);
    emit(opts, { event: "lock_refused", name: s.name, attempt, retryInMs, blockers: seen });
    attempts.push({ attempt, at, blockers: seen, retryInMs });
    opts.log.warn(
      { migration: s.name, attempt, of: opts.lockAttempts, at: f.at, retryInMs, blockers: seen },
      "lock_timeout: the lock was not granted; trying again",
    );
    if (!(await sleep(retryInMs, signal))) {
      f.lockAttempts = attempts;
      f.notRetried = "interrupted";
      f.stopped = true;
      return result;
    }
  }
}

/** Resolves true after `ms`, or false at once when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return wait(ms, true, { signal }).catch(() => false);
}

/** For a one-line error (the server's start-up): the blockers last seen, if any. */
export function blockersSummary(f: StepFailure): string {
  const last = f.lockAttempts?.at(-1)?.blockers;
  if (!last) return "";
  if ("unavailable" in last) return `; blockers unknown: ${last.unavailable}`;
  const tries = `${f.lockAttempts!.length} attempt(s)`;
  if (last.blockers.length === 0) return `; ${tries}, no blocker seen`;
  return `; ${tries}, held by ${last.blockers.map(describeSession).join("; ")} (seen ${last.msBeforeFailure} ms before the refusal)`;
}
