import { setTimeout as sleep } from "node:timers/promises";

/** How often a long pause between batches looks whether the job changed. */
const PAUSE_CHECK_MS = 1000;
/** The least pause while the database is busy. */
const BUSY_PAUSE_MS = 1000;
/** How long close() waits for a batch under way. */
const CLOSE_WAIT_MS = 5000;

/** What every background job's row keeps of its progress. */
export interface JobProgress {
  rowsDone: bigint;
  rowsFailed: bigint;
  lastError: string | undefined;
  startedAt: Date;
  updatedAt: Date;
  finishedAt: Date | undefined;
}

/** Rows done per second from the job's start to its end or its last batch. */
export function rowsPerSecond(job: JobProgress): number {
  const end = job.finishedAt ?? job.updatedAt;
  const seconds = (end.getTime() - job.startedAt.getTime()) / 1000;
  return seconds > 0 ? Number(job.rowsDone) / seconds : 0;
}

/**
 * This instance's share of a deployment-wide background job (re-encryption,
 * index-key rotation): one run at a time, however often it is woken, and
 * none after close().
 */
export interface Worker {
  /** Runs `run` unless a run is under way (then waits for it) or the worker is closed. */
  work(): Promise<void>;
  /** Aborted by close(): runs stop between batches. */
  readonly signal: AbortSignal;
  /** Lets a run under way end, waiting at most a few seconds. */
  close(): Promise<void>;
  /**
   * Set by the background job to run work() through its error logging: a
   * start wakes this instance's worker at once rather than at its next poll.
   */
  wake: () => void;
}

export function newWorker(run: () => Promise<void>): Worker {
  const closing = new AbortController();
  let running: Promise<void> | undefined;
  return {
    signal: closing.signal,
    wake: () => undefined,
    work() {
      if (running || closing.signal.aborted) return running ?? Promise.resolve();
      // Set before the first await: a wake and the poll never both pass.
      running = run().finally(() => {
        running = undefined;
      });
      return running;
    },
    async close() {
      closing.abort();
      // A batch stuck on a database that never answers must not hold
      // shutdown: its transaction is rolled back when the pool closes.
      const waited = running?.catch(() => undefined);
      await Promise.race([waited, sleep(CLOSE_WAIT_MS, undefined, { ref: false })]);
    },
  };
}

/**
 * The wait between two batches: the job's pause, at least a second while the
 * database is busy; cut short when the job changed (`current` false) or the
 * worker closes.
 */
export async function pauseBetweenBatches(p: {
  pauseMs: number;
  busy: () => Promise<boolean>;
  current: () => Promise<boolean>;
  signal: AbortSignal;
}): Promise<void> {
  const until = Date.now() + Math.max(p.pauseMs, (await p.busy()) ? BUSY_PAUSE_MS : 0);
  while (!p.signal.aborted && Date.now() < until) {
    const slice = Math.min(until - Date.now(), PAUSE_CHECK_MS);
    await sleep(slice, undefined, { signal: p.signal }).catch(() => undefined);
    if (!(await p.current())) return;
  }
}
