import type { Context } from "./context.js";
import type { JobProgress, JobRepo, JobStatus } from "./job_worker.js";
import type { RowMove } from "./sealed_store.js";

// The re-encryption job: its row, and the repository that keeps it (the
// use case is in reencryption.ts).

export type ReencryptionState = "running" | "stopped" | "finished";

/** The re-encryption job as stored: one for the whole deployment. */
export interface ReencryptionJob extends JobProgress {
  state: ReencryptionState;
  /** Bumped by every start. */
  generation: number;
  /** Values under versions below this move; undefined: every version but the active. */
  belowVersion: number | undefined;
  /** The active key this pass moves values to (a rotation starts a new pass). */
  targetVersion: number;
  /** The last row done. */
  cursorId: number;
  batchSize: number;
  pauseMs: number;
}

/** Storage of the job's row, implemented in internal/data beside its store's writes. */
export interface ReencryptionRepo extends JobRepo<ReencryptionJob> {
  /** Starts a job unless one is running: `started` false and the running one otherwise. Audited. */
  start(
    opts: {
      belowVersion: number | undefined;
      targetVersion: number;
      batchSize: number;
      pauseMs: number;
    },
    ctx?: Context,
  ): Promise<{ job: ReencryptionJob; started: boolean }>;
  /** Marks a running job stopped (audited); the job as it is then. */
  stop(ctx?: Context): Promise<ReencryptionJob | undefined>;
  /**
   * One transaction, only while the job `read` is still running at the same
   * pass and cursor: the moves applied (SealedWrites.move), the cursor moved
   * to `lastId` and the counts added. `running` false, nothing written,
   * otherwise (a stop, a new start, another pass).
   */
  commitBatch(batch: {
    read: ReencryptionJob;
    lastId: number;
    moves: RowMove[];
    failed: number;
    lastError: string | undefined;
  }): Promise<{ running: boolean; moved: number }>;
  /**
   * Marks the job `read` finished (audited), if it is still at that pass and
   * cursor and its target is still the active key; whether it did.
   */
  finish(read: ReencryptionJob): Promise<boolean>;
  /** A new pass from the start towards `targetVersion`, if `read` is still current. */
  retarget(read: ReencryptionJob, targetVersion: number): Promise<void>;
}

export type ReencryptionStatus = JobStatus<ReencryptionJob>;
