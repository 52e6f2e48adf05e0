import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  IndexKeyRotationPhase,
  IndexKeyRotationState,
  ReencryptionState,
  type IndexKeyRotationStatusSchema,
  type ReencryptionStatusSchema,
} from "../../api/kms/v1/kms_pb.js";
import type { JobProgress, JobStatus } from "../biz/job_worker.js";
import type {
  ReencryptionJob,
  ReencryptionState as BizReencryptionState,
  ReencryptionStatus,
} from "../biz/reencryption_job.js";
import type {
  IndexRotationJob,
  IndexRotationPhase,
  IndexRotationState,
  IndexRotationStatus,
} from "../biz/index_rotation_job.js";

// The status messages of KmsService's two jobs: each its own fields, and the
// progress both share.

const reencryptionStates: Record<BizReencryptionState, ReencryptionState> = {
  running: ReencryptionState.RUNNING,
  stopped: ReencryptionState.STOPPED,
  finished: ReencryptionState.FINISHED,
};

const indexPhases: Record<IndexRotationPhase, IndexKeyRotationPhase> = {
  backfill: IndexKeyRotationPhase.BACKFILL,
  clear: IndexKeyRotationPhase.CLEAR,
  done: IndexKeyRotationPhase.DONE,
};

const indexStates: Record<IndexRotationState, IndexKeyRotationState> = {
  running: IndexKeyRotationState.RUNNING,
  failed: IndexKeyRotationState.FAILED,
  finished: IndexKeyRotationState.FINISHED,
};

export function reencryptionStatus(
  s: ReencryptionStatus,
): MessageInitShape<typeof ReencryptionStatusSchema> {
  return message<ReencryptionJob, MessageInitShape<typeof ReencryptionStatusSchema>>(
    s,
    { state: ReencryptionState.NONE },
    (job) => ({
      state: reencryptionStates[job.state],
      belowVersion: job.belowVersion ?? 0,
      targetVersion: job.targetVersion,
    }),
  );
}

export function indexRotationStatus(
  s: IndexRotationStatus,
): MessageInitShape<typeof IndexKeyRotationStatusSchema> {
  return message<IndexRotationJob, MessageInitShape<typeof IndexKeyRotationStatusSchema>>(
    s,
    { phase: IndexKeyRotationPhase.NONE, state: IndexKeyRotationState.NONE },
    (job) => ({
      phase: indexPhases[job.phase],
      state: indexStates[job.state],
      switchedAt: job.switchedAt ? timestampFromDate(job.switchedAt) : undefined,
    }),
  );
}

/** `none` when there is no job; otherwise the job's own fields and its progress. */
function message<J extends JobProgress, M extends object>(
  s: JobStatus<J>,
  none: M,
  own: (job: J) => M,
): M {
  const job = s.job;
  if (!job) return none;
  return {
    ...own(job),
    rowsDone: job.rowsDone,
    rowsRemaining: s.rowsRemaining,
    rowsFailed: job.rowsFailed,
    lastError: job.lastError ?? "",
    rowsPerSecond: s.rowsPerSecond,
    startedAt: timestampFromDate(job.startedAt),
    updatedAt: timestampFromDate(job.updatedAt),
    finishedAt: job.finishedAt ? timestampFromDate(job.finishedAt) : undefined,
  };
}
