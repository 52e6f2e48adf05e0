import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack, durationMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import {
  ErrorInfoSchema,
  RetryInfoSchema,
  type ErrorInfo,
  type RetryInfo,
} from "../../third_party/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../third_party/google/rpc/status_pb.js";

/** What a failed call answered, whichever client made it. */
export interface Failure {
  /** The gRPC status code (Connect's `Code` uses the same numbers; 0 only from `outcome`). */
  code: number;
  /** The status message as sent (Connect's rawMessage, grpc-js's details). */
  message: string;
  /** google.rpc.ErrorInfo's reason and domain, when the answer carried one. */
  reason: string | undefined;
  domain: string | undefined;
  /** ErrorInfo's metadata; {} without ErrorInfo. */
  metadata: Record<string, string>;
  /** google.rpc.RetryInfo's retry_delay in milliseconds, when the answer carried one. */
  retryMs: number | undefined;
}

const isGrpcJsError = (err: unknown): err is grpc.ServiceError =>
  err instanceof Error &&
  typeof (err as Partial<grpc.ServiceError>).code === "number" &&
  (err as Partial<grpc.ServiceError>).metadata instanceof grpc.Metadata;

/**
 * A rejection of a Connect client (any transport) or of a @grpc/grpc-js client
 * (details read from grpc-status-details-bin) as one shape.
 */
export function failureOf(err: unknown): Failure {
  let code: number;
  let message: string;
  let info: ErrorInfo | undefined;
  let retry: RetryInfo | undefined;
  if (!(err instanceof ConnectError) && isGrpcJsError(err)) {
    const bin = err.metadata.get("grpc-status-details-bin")[0];
    const details = bin ? fromBinary(StatusSchema, bin as Buffer).details : [];
    const first = <T>(unpack: (d: (typeof details)[number]) => T | undefined) =>
      details.map(unpack).find((x) => x !== undefined);
    code = err.code;
    message = err.details;
    info = first((d) => anyUnpack(d, ErrorInfoSchema));
    retry = first((d) => anyUnpack(d, RetryInfoSchema));
  } else {
    const e = ConnectError.from(err);
    code = e.code;
    message = e.rawMessage;
    info = e.findDetails(ErrorInfoSchema)[0];
    retry = e.findDetails(RetryInfoSchema)[0];
  }
  return {
    code,
    message,
    reason: info?.reason,
    domain: info?.domain,
    metadata: { ...info?.metadata },
    retryMs: retry?.retryDelay ? durationMs(retry.retryDelay) : undefined,
  };
}

/** The failure `call` rejects with; throws (failing the test) if it succeeds. */
export async function rejection(call: Promise<unknown>): Promise<Failure> {
  let settled: { value: unknown } | undefined;
  try {
    settled = { value: await call };
  } catch (err) {
    return failureOf(err);
  }
  throw new Error(`expected the call to fail, it answered ${stringify(settled.value)}`);
}

/** A call that may fail or succeed: its failure, or code 0 (and nothing else) when it succeeds. */
export function outcome(call: Promise<unknown>): Promise<Failure> {
  return call.then(
    (): Failure => ({
      code: grpc.status.OK,
      message: "",
      reason: undefined,
      domain: undefined,
      metadata: {},
      retryMs: undefined,
    }),
    failureOf,
  );
}

const stringify = (v: unknown) =>
  JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? String(x) : x));
