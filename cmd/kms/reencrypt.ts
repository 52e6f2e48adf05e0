import { readFileSync } from "node:fs";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { durationFromMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { SingleBar } from "cli-progress";
import { KmsService, ReencryptionState, type ReencryptionStatus } from "../../api/kms/v1/kms_pb.js";
import { parseDurationMs } from "../../internal/conf/duration.js";
import { ErrorInfoSchema } from "../../third_party/google/rpc/error_details_pb.js";

export interface ReencryptArgs {
  addr: string;
  tls?: boolean;
  ca?: string;
  "token-file"?: string;
  timeout: string;
  json?: boolean;
  below?: string;
  "batch-size"?: string;
  pause?: string;
  watch?: boolean;
}

/** A command line the tool cannot act on (exit 2). */
class UsageError extends Error {}

export const exitCodeOf = (err: unknown) => (err instanceof UsageError ? 2 : 1);

/** What went wrong, for stderr: the code and reason of a refused call, never the token. */
export function describeError(err: unknown): string {
  if (err instanceof ConnectError) {
    const reason = err.findDetails(ErrorInfoSchema)[0]?.reason;
    const code = Code[err.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
    return `${code}${reason ? ` (${reason})` : ""}: ${err.rawMessage}`;
  }
  return (err as Error).message;
}

const states: Record<ReencryptionState, string> = {
  [ReencryptionState.UNSPECIFIED]: "unknown",
  [ReencryptionState.NONE]: "none",
  [ReencryptionState.RUNNING]: "running",
  [ReencryptionState.STOPPED]: "stopped",
  [ReencryptionState.FINISHED]: "finished",
};

export async function reencrypt(action: "start" | "status" | "stop", args: ReencryptArgs) {
  const timeoutMs = duration("--timeout", args.timeout);
  const kms = client(args);
  const call = { timeoutMs, headers: auth(args) };
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
    await new Promise((r) => setTimeout(r, 500));
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

function client(args: ReencryptArgs): Client<typeof KmsService> {
  if (!/^[^\s/]+:\d+$/.test(args.addr)) throw new UsageError("--addr: expected host:port");
  if (args.ca && !args.tls) throw new UsageError("--ca needs --tls");
  const ca = args.ca ? readFile("--ca", args.ca) : undefined;
  return createClient(
    KmsService,
    createGrpcTransport({
      baseUrl: `${args.tls ? "https" : "http"}://${args.addr}`,
      nodeOptions: ca ? { ca } : undefined,
    }),
  );
}

function auth(args: ReencryptArgs): Headers {
  const token = args["token-file"]
    ? readFile("--token-file", args["token-file"]).toString("utf8").trim()
    : process.env.KMS_TOKEN;
  return new Headers(token ? { authorization: `Bearer ${token}` } : {});
}

function readFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(
      `${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
    );
  }
}

function integer(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new UsageError(`${flag}: expected an integer from ${min} to ${max}`);
  }
  return n;
}

function duration(flag: string, value: string, maxHours = 24): number {
  const ms = parseDurationMs(value);
  if (ms === undefined || ms > maxHours * 3600_000) {
    throw new UsageError(
      `${flag}: expected a duration such as 500ms, 10s or 1m (at most ${maxHours}h)`,
    );
  }
  return ms;
}
