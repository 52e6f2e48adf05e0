import type { DescEnum } from "@bufbuild/protobuf";

/** gRPC status codes a use case may answer with (transport-neutral names). */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "UNAUTHENTICATED"
  | "FAILED_PRECONDITION"
  | "RESOURCE_EXHAUSTED"
  | "ABORTED"
  | "DATA_LOSS"
  | "UNAVAILABLE"
  | "DEADLINE_EXCEEDED"
  | "UNIMPLEMENTED"
  | "INTERNAL";

/** A reason: one value of an API package's generated ErrorReason enum. */
export interface Reason {
  enum: DescEnum;
  value: number;
}

/**
 * A failure a client can act on, as Kratos' errors.Error: a code, a stable
 * reason from the API's error_reason.proto, a message safe to show, and
 * metadata (never secrets or personal data).
 */
export class BizError extends Error {
  override name = "BizError";

  constructor(
    readonly code: ErrorCode,
    readonly reason: Reason,
    message: string,
    readonly metadata: Readonly<Record<string, string>> = {},
    /** When the client may retry (RESOURCE_EXHAUSTED, UNAVAILABLE). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Whether `err` is a BizError for `value` of the API enum `reasons`. */
export function hasReason(err: unknown, reasons: DescEnum, value: number): err is BizError {
  return err instanceof BizError && err.reason.enum === reasons && err.reason.value === value;
}

/** The reason's wire name ("USER_NOT_FOUND") and domain ("user.v1"). */
export function reasonName(reason: Reason): { reason: string; domain: string } {
  const value = reason.enum.value[reason.value];
  const name = value?.name ?? "ERROR_REASON_UNSPECIFIED";
  return { reason: name.replace(/^ERROR_REASON_/, ""), domain: reason.enum.file.proto.package };
}

/** A constructor of BizErrors whose reasons come from one API package's ErrorReason enum. */
export function errorFactory(reasons: DescEnum) {
  return (
    code: ErrorCode,
    reason: number,
    message: string,
    metadata: Record<string, string> = {},
    retryAfterMs?: number,
  ) => new BizError(code, { enum: reasons, value: reason }, message, metadata, retryAfterMs);
}
