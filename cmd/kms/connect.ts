import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { durationFromMs, type Duration } from "@bufbuild/protobuf/wkt";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { parseDurationMs } from "../../internal/conf/duration.js";
import { readBytes, readSecretFile, SecretFileError } from "../../internal/pkg/secret/file.js";
import { ErrorInfoSchema } from "../../third_party/google/rpc/error_details_pb.js";

// What every kms command shares: reaching the service's gRPC port with a
// token, checking the command line, and saying what went wrong.

/** The options every command takes (see main.ts). */
export interface ConnectArgs {
  addr: string;
  tls?: boolean;
  ca?: string;
  "token-file"?: string;
  timeout: string;
}

/** A command line the tool cannot act on (exit 2). */
export class UsageError extends Error {}

export const exitCodeOf = (err: unknown) => (err instanceof UsageError ? 2 : 1);

/**
 * What went wrong, for stderr: the code and reason of a refused call, never
 * the token; a refusal for want of a token says where one is looked for.
 */
export function describeError(err: unknown, args?: ConnectArgs): string {
  if (err instanceof ConnectError) {
    const reason = err.findDetails(ErrorInfoSchema)[0]?.reason;
    const code = Code[err.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
    const hint =
      err.code === Code.Unauthenticated && args && !tokenGiven(args)
        ? "; no token was sent: set KMS_TOKEN or pass --token-file FILE (a token with kms.admin)"
        : "";
    return `${code}${reason ? ` (${reason})` : ""}: ${err.rawMessage}${hint}`;
  }
  return (err as Error).message;
}

const tokenGiven = (args: ConnectArgs) =>
  args["token-file"] !== undefined || Boolean(process.env.KMS_TOKEN);

export function client(args: ConnectArgs): Client<typeof KmsService> {
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

/** Per-call options: the --timeout and the token. */
export function callOptions(args: ConnectArgs): { timeoutMs: number; headers: Headers } {
  return { timeoutMs: duration("--timeout", args.timeout), headers: auth(args) };
}

export function auth(args: ConnectArgs): Headers {
  const token =
    args["token-file"] !== undefined
      ? readTokenFile("--token-file", args["token-file"])
      : process.env.KMS_TOKEN;
  return new Headers(token ? { authorization: `Bearer ${token}` } : {});
}

/**
 * A token file is read by the rule every secret file follows (one final line
 * ending dropped); a token must then be one line with no surrounding spaces,
 * as it travels in a header.
 */
export function readTokenFile(flag: string, path: string): string {
  const secret = asUsageError(() => readSecretFile(flag, path)).toString("utf8");
  if (/[\r\n]/.test(secret) || secret.trim() !== secret) {
    throw new UsageError(
      `${flag}: ${path} must hold the token alone, on one line with no surrounding spaces`,
    );
  }
  return secret;
}

function readFile(flag: string, path: string): Buffer {
  return asUsageError(() => readBytes(flag, path));
}

function asUsageError<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof SecretFileError) throw new UsageError(err.message);
    throw err;
  }
}

export function integer(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new UsageError(`${flag}: expected an integer from ${min} to ${max}`);
  }
  return n;
}

export function duration(flag: string, value: string, maxHours = 24): number {
  const ms = parseDurationMs(value);
  if (ms === undefined || ms > maxHours * 3600_000) {
    throw new UsageError(
      `${flag}: expected a duration such as 500ms, 10s or 1m (at most ${maxHours}h)`,
    );
  }
  return ms;
}

/** A background job's --batch-size and --pause, as its start request takes them (0/unset: the server's). */
export function batchOptions(args: { "batch-size"?: string; pause?: string }): {
  batchSize: number;
  pause: Duration | undefined;
} {
  return {
    batchSize:
      args["batch-size"] === undefined ? 0 : integer("--batch-size", args["batch-size"], 1, 10_000),
    pause:
      args.pause === undefined ? undefined : durationFromMs(duration("--pause", args.pause, 1)),
  };
}
