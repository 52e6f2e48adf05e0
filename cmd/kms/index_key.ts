import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  IndexKeyRotationPhase,
  IndexKeyRotationState,
  type IndexKeyRotationStatus,
} from "../../api/kms/v1/kms_pb.js";
import { batchOptions, callOptions, client, type ConnectArgs } from "./connect.js";
import { follow, printView } from "./progress.js";

export interface IndexKeyArgs extends ConnectArgs {
  json?: boolean;
  "batch-size"?: string;
  pause?: string;
  watch?: boolean;
}

const phases: Record<IndexKeyRotationPhase, string> = {
  [IndexKeyRotationPhase.UNSPECIFIED]: "unknown",
  [IndexKeyRotationPhase.NONE]: "none",
  [IndexKeyRotationPhase.BACKFILL]: "backfill",
  [IndexKeyRotationPhase.CLEAR]: "clear",
  [IndexKeyRotationPhase.DONE]: "done",
};
const states: Record<IndexKeyRotationState, string> = {
  [IndexKeyRotationState.UNSPECIFIED]: "unknown",
  [IndexKeyRotationState.NONE]: "none",
  [IndexKeyRotationState.RUNNING]: "running",
  [IndexKeyRotationState.FAILED]: "failed",
  [IndexKeyRotationState.FINISHED]: "finished",
};

/** `kms index-key rotate|status`: begins (or resumes) a rotation, or shows it. */
export async function indexKey(action: "rotate" | "status", args: IndexKeyArgs) {
  const kms = client(args);
  const call = callOptions(args);
  let status: IndexKeyRotationStatus;
  let started: boolean | undefined;
  if (action === "rotate") {
    const r = await kms.rotateIndexKey(batchOptions(args), call);
    ({ started } = r);
    status = r.status!;
  } else {
    status = (await kms.getIndexKeyRotationStatus({}, call)).status!;
  }
  const json = args.json === true;
  if (args.watch) {
    status = await follow({
      label: "index-key rotation",
      first: status,
      poll: async () => (await kms.getIndexKeyRotationStatus({}, call)).status!,
      running: (s) => s.state === IndexKeyRotationState.RUNNING,
      json,
    });
  }
  const at = (t: typeof status.startedAt) => (t ? timestampDate(t).toISOString() : undefined);
  printView(
    {
      started,
      phase: phases[status.phase],
      state: states[status.state],
      rowsDone: Number(status.rowsDone),
      rowsRemaining: Number(status.rowsRemaining),
      rowsFailed: Number(status.rowsFailed),
      rowsPerSecond: Math.round(status.rowsPerSecond),
      lastError: status.lastError || undefined,
      startedAt: at(status.startedAt),
      switchedAt: at(status.switchedAt),
      finishedAt: at(status.finishedAt),
    },
    json,
  );
  // Following a rotation promises its end; a failed one waits for the operator.
  if (args.watch && status.state !== IndexKeyRotationState.FINISHED) process.exitCode = 1;
}
