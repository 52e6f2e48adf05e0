import type { JobProgress } from "../biz/job_worker.js";

/** The progress columns every job's table has (kms_reencryption, kms_index_rotation). */
export interface ProgressRow {
  rows_done: string;
  rows_failed: string;
  last_error: string | null;
  started_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

export const progressOf = (r: ProgressRow): JobProgress => ({
  rowsDone: BigInt(r.rows_done),
  rowsFailed: BigInt(r.rows_failed),
  lastError: r.last_error ?? undefined,
  startedAt: r.started_at,
  updatedAt: r.updated_at,
  finishedAt: r.finished_at ?? undefined,
});
