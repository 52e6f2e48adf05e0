import type { Client } from "@connectrpc/connect";
import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { SingleBar } from "cli-progress";
import {
  ReencryptionState,
  type KmsService,
  type ReencryptionStatus,
} from "../../api/kms/v1/kms_pb.js";
import { callOptions, client, duration, integer, type ConnectArgs } from "./connect.js";

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
      batchSize:
        args["batch-size"] === undefined
          ? 0
          : integer("--batch-size", args["batch-size"], 1, 10_000),
      pause:
        args.pause === undefined ? undefined : durationFromMs(duration("--pause", args.pause, 1)),
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

/** Polls until the job is no longer running, drawing a progress bar (stderr). */
async function watch(
  kms: Client<typeof KmsService>,
  call: { timeoutMs: number; headers: Headers },
  first: ReencryptionStatus,
  json: boolean,
): Promise<ReencryptionStatus> {
  const bar = new SingleBar({
    format:
      "re-encryption |{bar}| {percentage}% | {value}/{total} rows | {rate} rows/s | {failed} failed",
    stream: process.stderr,
    // Without a terminal (a deploy log), a line every 10 s instead of a bar.
    noTTYOutput: !json,
    notTTYSchedule: 10_000,
    hideCursor: true,
  });
  const counts = (s: ReencryptionStatus) => ({
    done: Number(s.rowsDone),
    total: Number(s.rowsDone + s.rowsRemaining),
    payload: { rate: s.rowsPerSecond.toFixed(0), failed: String(s.rowsFailed) },
  });
  let status = first;
  if (!json) bar.start(counts(status).total, counts(status).done, counts(status).payload);
  while (status.state === ReencryptionState.RUNNING) {
    // Each status counts the rows left (a scan on a large table): asked
    // often, it would slow the job it watches.
    await new Promise((r) => setTimeout(r, 2000));
    status = (await kms.getReencryptionStatus({}, call)).status!;
    const c = counts(status);
    if (!json) {
      bar.setTotal(c.total);
      bar.update(c.done, c.payload);
    }
  }
  if (!json) bar.stop();
  return status;
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
  if (json) {
    process.stdout.write(`${JSON.stringify(view)}\n`);
    return;
  }
  const lines = Object.entries(view)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k.padEnd(14)} ${String(v)}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}
