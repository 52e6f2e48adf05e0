import type { Client } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  ReencryptionState,
  type KmsService,
  type ReencryptionStatus,
} from "../../api/kms/v1/kms_pb.js";
import { batchOptions, callOptions, client, integer, type ConnectArgs } from "./connect.js";
import { follow, printView } from "./progress.js";

export interface ReencryptArgs extends ConnectArgs {
  json?: boolean;
  below?: string;
  "batch-size"?: string;
  pause?: string;
  watch?: boolean;
}

const states: Record<ReencryptionState, string> = {
  [ReencryptionState.UNSPECIFIED]: "unknown",
  [ReencryptionState.NONE]: "none",
  [ReencryptionState.RUNNING]: "running",
  [ReencryptionState.STOPPED]: "stopped",
  [ReencryptionState.FINISHED]: "finished",
};

export async function reencrypt(action: "start" | "status" | "stop", args: ReencryptArgs) {
  const kms = client(args);
  const call = callOptions(args);
  let status: ReencryptionStatus | undefined;
  if (action === "start") {
    const request = {
      belowVersion: args.below === undefined ? 0 : integer("--below", args.below, 1, 2 ** 31 - 1),
      ...batchOptions(args),
    };
    status = (await kms.startReencryption(request, call)).status;
  } else if (action === "stop") {
    status = (await kms.stopReencryption({}, call)).status;
  } else {
    status = (await kms.getReencryptionStatus({}, call)).status;
  }
  if (args.watch) status = await watch(kms, call, status!, args.json === true);
  print(status!, args.json === true);
  // Following a job promises its end: a job that stopped did not finish.
  if (args.watch && status!.state !== ReencryptionState.FINISHED) process.exitCode = 1;
}

function watch(
  kms: Client<typeof KmsService>,
  call: { timeoutMs: number; headers: Headers },
  first: ReencryptionStatus,
  json: boolean,
): Promise<ReencryptionStatus> {
  return follow({
    label: "re-encryption",
    first,
    poll: async () => (await kms.getReencryptionStatus({}, call)).status!,
    running: (s) => s.state === ReencryptionState.RUNNING,
    json,
  });
}

function print(s: ReencryptionStatus, json: boolean): void {
  const view = {
    state: states[s.state],
    belowVersion: s.belowVersion || undefined,
    targetVersion: s.targetVersion || undefined,
    rowsDone: Number(s.rowsDone),
    rowsRemaining: Number(s.rowsRemaining),
    rowsFailed: Number(s.rowsFailed),
    rowsPerSecond: Math.round(s.rowsPerSecond),
    lastError: s.lastError || undefined,
    startedAt: s.startedAt ? timestampDate(s.startedAt).toISOString() : undefined,
    finishedAt: s.finishedAt ? timestampDate(s.finishedAt).toISOString() : undefined,
  };
  printView(view, json);
}
