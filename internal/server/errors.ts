import type { DescMessage, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { BizError, reasonName, type ErrorCode } from "../biz/errors.js";
import { isDatabaseUnavailable } from "../pkg/dberr/dberr.js";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "../../third_party/google/rpc/error_details_pb.js";

// The one error mapping. Everything a handler throws becomes a ConnectError
// carrying a google.rpc.ErrorInfo; the gRPC port turns that same value into a
// status with grpc-status-details-bin (grpc_status.ts), so both ports answer
// identically. What a transport refuses before the chain is in
// request_refused.ts.

const codes: Record<ErrorCode, Code> = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  NOT_FOUND: Code.NotFound,
  ALREADY_EXISTS: Code.AlreadyExists,
  PERMISSION_DENIED: Code.PermissionDenied,
  UNAUTHENTICATED: Code.Unauthenticated,
  FAILED_PRECONDITION: Code.FailedPrecondition,
  RESOURCE_EXHAUSTED: Code.ResourceExhausted,
  ABORTED: Code.Aborted,
  DATA_LOSS: Code.DataLoss,
  UNAVAILABLE: Code.Unavailable,
  DEADLINE_EXCEEDED: Code.DeadlineExceeded,
  UNIMPLEMENTED: Code.Unimplemented,
  INTERNAL: Code.Internal,
};

/** Reasons every API package declares in its error_reason.proto. */
export type CommonReason =
  | "VALIDATION_FAILED"
  | "INTERNAL"
  | "NOT_IMPLEMENTED"
  | "DEADLINE_EXCEEDED"
  | "UNAVAILABLE"
  | "REQUEST_TOO_LARGE"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "RATE_LIMITED";

export interface ExtraDetail {
  desc: DescMessage;
  value: Record<string, unknown>;
}

/** A ConnectError with an ErrorInfo whose domain is the service's package. */
export function serviceError(
  service: DescService,
  code: Code,
  reason: CommonReason,
  message: string,
  metadata: Record<string, string> = {},
  extra: ExtraDetail[] = [],
): ConnectError {
  const info = { reason, domain: service.file.proto.package, metadata };
  return new ConnectError(message, code, undefined, [
    { desc: ErrorInfoSchema, value: info },
    ...extra.map((d) => ({ desc: d.desc, value: d.value })),
  ]);
}

/**
 * Which code and reason each failure of the serving path gets, on both
 * ports: decided here and nowhere else (use cases decide theirs in biz, as
 * BizErrors that toConnectError maps).
 */
export const rpcErrors = {
  unauthenticated: (service: DescService, message: string) =>
    serviceError(service, Code.Unauthenticated, "UNAUTHENTICATED", message),
  permissionDenied: (service: DescService, scope: string) =>
    serviceError(service, Code.PermissionDenied, "PERMISSION_DENIED", `missing scope ${scope}`, {
      scope,
    }),
  rateLimited: (service: DescService, retryMs: number) =>
    serviceError(
      service,
      Code.ResourceExhausted,
      "RATE_LIMITED",
      "rate limit exceeded; retry later",
      {},
      [retryInfo(retryMs)],
    ),
  /** A peer address past its limit of failed authentications (refused before authenticating). */
  authFailuresLimited: (service: DescService, retryMs: number) =>
    serviceError(
      service,
      Code.ResourceExhausted,
      "RATE_LIMITED",
      "too many failed authentications from this address; retry later",
      {},
      [retryInfo(retryMs)],
    ),
  deadlineExceeded: (service: DescService) =>
    serviceError(service, Code.DeadlineExceeded, "DEADLINE_EXCEEDED", "deadline exceeded"),
  /** A field breaks a rule: the first one named, every one in BadRequest. */
  invalidField: (
    service: DescService,
    field: string,
    rule: string,
    description: string,
    violations?: { field: string; description: string; reason: string }[],
  ) =>
    serviceError(
      service,
      Code.InvalidArgument,
      "VALIDATION_FAILED",
      `invalid ${field}: ${description}`,
      { field, rule },
      violations ? [{ desc: BadRequestSchema, value: { fieldViolations: violations } }] : [],
    ),
  notImplemented: (service: DescService, what: string) =>
    serviceError(service, Code.Unimplemented, "NOT_IMPLEMENTED", `${what} is not implemented yet`),
  /** A method no API here declares; `domain` is its package when it is one of ours. */
  unknownMethod: (domain: string) =>
    new ConnectError("unknown method", Code.Unimplemented, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "NOT_IMPLEMENTED", domain } },
    ]),
  unavailable: (service: DescService) =>
    serviceError(service, Code.Unavailable, "UNAVAILABLE", "database unavailable; retry"),
  internal: (service: DescService) =>
    serviceError(service, Code.Internal, "INTERNAL", "internal error"),
  cancelled: () => new ConnectError("client cancelled", Code.Canceled),
};

/**
 * Maps anything thrown by a handler to the ConnectError clients see. Unknown
 * faults become INTERNAL with a fixed message; `onInternal` gets the original
 * (for the log, never for the client).
 */
export function toConnectError(
  err: unknown,
  service: DescService,
  onInternal: (err: unknown) => void,
): ConnectError {
  if (err instanceof BizError) {
    const { reason, domain } = reasonName(err.reason);
    const retry = err.retryAfterMs === undefined ? [] : [retryInfo(err.retryAfterMs)];
    return new ConnectError(err.message, codes[err.code], undefined, [
      { desc: ErrorInfoSchema, value: { reason, domain, metadata: { ...err.metadata } } },
      ...retry,
    ]);
  }
  if (err instanceof ConnectError) {
    if (err.findDetails(ErrorInfoSchema).length > 0) return err;
    if (err.code === Code.Canceled) return err;
    if (err.code === Code.DeadlineExceeded) return rpcErrors.deadlineExceeded(service);
  }
  // Retryable, and says nothing of where the database is.
  if (isDatabaseUnavailable(err)) {
    return rpcErrors.unavailable(service);
  }
  onInternal(err);
  return rpcErrors.internal(service);
}

/** A google.rpc.RetryInfo detail: retry after at least `ms`. */
export function retryInfo(ms: number) {
  return {
    desc: RetryInfoSchema,
    value: { retryDelay: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 } },
  };
}

/** gRPC's canonical name of a code (INVALID_ARGUMENT), for logs and metrics. */
export function codeName(code: Code): string {
  return code === Code.Canceled
    ? "CANCELLED"
    : Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
