import type { Context } from "./context.js";
import type { Slot } from "./kms/index_keys.js";
import type { BatchPolicy, JobProgress, JobRepo, JobStatus } from "./job_worker.js";
import type { IndexFill } from "./sealed_store.js";

// The index-key rotation job: its row, and the repository that keeps it
// (the use case is in index_rotation.ts).

/**
 * backfill: writes fill both index columns while the job fills the new one
 * for older rows; clear: the new key is the key (the old one is deleted) and
 * the job empties the old column; done.
 */
export type IndexRotationPhase = "backfill" | "clear" | "done";
/** failed: rows whose values cannot be read have no index under the new key; a new RotateIndexKey resumes. */
export type IndexRotationState = "running" | "failed" | "finished";

/** The index-key rotation as stored: one for the whole deployment. */
export interface IndexRotationJob extends JobProgress {
  phase: IndexRotationPhase;
  state: IndexRotationState;
  /** The slot the new key fills. */
  toSlot: Slot;
  /** The index keys' epoch this phase works under. */
  epoch: number;
  cursorId: number;
  batchSize: number;
  pauseMs: number;
  switchedAt: Date | undefined;
}

/** Storage of the rotation's row and the index keys, implemented in internal/data beside its store's writes. */
export interface IndexRotationRepo extends JobRepo<IndexRotationJob> {
  /**
   * One transaction, ordered against every write of an index: unless a
   * rotation is under way, stores the key `make(rootKeyId)` wraps as the
   * next index key (writes fill both columns from then on) and starts the
   * job; a failed job resumes from its first row. Audited; announced.
   */
  begin(
    make: (rootKeyId: string | undefined) => Buffer,
    policy: BatchPolicy,
    ctx?: Context,
  ): Promise<{ job: IndexRotationJob; started: boolean }>;
  /**
   * One transaction, while the job is as `read`: the fills written
   * (SealedWrites.fill: a user's write in between filled both columns
   * itself), the cursor moved to `lastId`, counts added.
   */
  commitFill(batch: {
    read: IndexRotationJob;
    lastId: number;
    fills: IndexFill[];
    failed: number;
    lastError: string | undefined;
  }): Promise<{ running: boolean }>;
  /**
   * The final step, ordered against every write of an index: when no row
   * lacks its index under the next key, the next key replaces the current
   * one (which is deleted), and the job goes on to empty the old column
   * (audited, announced); otherwise the job fails, saying how many rows.
   */
  switchKeys(read: IndexRotationJob): Promise<{ switched: boolean; missing: bigint }>;
  /** Empties the old slot's columns of the next `limit` rows after the cursor; finishes the job when none is left. */
  clearBatch(read: IndexRotationJob): Promise<{ running: boolean; done: boolean }>;
  /** Marks the job, still as `read`, failed with `message` (the operator's to resolve). */
  fail(read: IndexRotationJob, message: string): Promise<void>;
}

export type IndexRotationStatus = JobStatus<IndexRotationJob>;
