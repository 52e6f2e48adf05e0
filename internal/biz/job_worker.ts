import { setTimeout as sleep } from "node:timers/promises";

/** How often a long pause between batches looks whether the job changed. */
const PAUSE_CHECK_MS = 1000;
/** The least pause while the database is busy. */
const BUSY_PAUSE_MS = 1000;
/** How long close() waits for a batch under way. */
const CLOSE_WAIT_MS = 5000;

// A job is deployment-wide background work stored as one row (the
// re-encryption, the index-key rotation); a worker is one instance's share
// of it, taking the job's lock while it works.

/** Defaults for a job's batches (kms.reencryption_* in the config). */
export interface BatchPolicy {
  batchSize: number;
  pauseMs: number;
}

/** What every job's row keeps of its progress. */
export interface JobProgress {
  rowsDone: bigint;
  rowsFailed: bigint;
  lastError: string | undefined;
  startedAt: Date;
  updatedAt: Date;
  finishedAt: Date | undefined;
}

/** Rows done per second from the job's start to its end or its last batch. */
function rowsPerSecond(job: JobProgress): number {
  const end = job.finishedAt ?? job.updatedAt;
  const seconds = (end.getTime() - job.startedAt.getTime()) / 1000;
  return seconds > 0 ? Number(job.rowsDone) / seconds : 0;
}

/** A job as the API reports it: its row, and how far it has to go. */
export interface JobStatus<J extends JobProgress> {
  job: J | undefined;
  rowsRemaining: bigint;
  rowsPerSecond: number;
}

/** The status of `job`; `remaining` counts the rows left while it is under way. */
export async function jobStatus<J extends JobProgress>(
  job: J | undefined,
  remaining: (job: J) => Promise<bigint> | bigint,
): Promise<JobStatus<J>> {
  if (!job) return { job, rowsRemaining: 0n, rowsPerSecond: 0 };
  return { job, rowsRemaining: await remaining(job), rowsPerSecond: rowsPerSecond(job) };
}

/** What every job's repository offers besides its own steps. */
export interface JobRepo<J> {
  job(): Promise<J | undefined>;
  /** Runs `work` holding the deployment-wide lock of this job; false at once when another instance holds it. */
  exclusively(work: () => Promise<void>): Promise<boolean>;
  /** The database is busy (sessions waiting on locks, many active queries): back off. */
  busy(): Promise<boolean>;
}

/**
 * This instance's worker on a job: polled by the KMS timers, woken by a
 * start. When the job runs and no other instance works on it, runs
 * `batches` until the job finishes, stops, or this instance stops.
 */
export function jobWorker<J extends { state: string }>(
  rows: JobRepo<J>,
  batches: () => Promise<void>,
): Worker {
  return newWorker(async () => {
    const job = await rows.job();
    if (job?.state === "running") await rows.exclusively(batches);
  });
}

/**
 * This instance's share of a job (re-encryption, index-key rotation): one
 * run at a time, however often it is woken, and none after close().
 */
export interface Worker {
  /** Runs `run` unless a run is under way (then waits for it) or the worker is closed. */
  work(): Promise<void>;
  /** Aborted by close(): runs stop between batches. */
  readonly signal: AbortSignal;
  /** Lets a run under way end, waiting at most a few seconds. */
  close(): Promise<void>;
  /**
   * Set by the KMS timers (kms_job.ts) to run work() through their error
   * logging: a start wakes this instance's worker at once rather than at its
   * next poll.
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
