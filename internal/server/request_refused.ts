import type { DescMethodUnary } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import { retryInfo, serviceError } from "./errors.js";

/** Why a transport could not take a request. */
export type Refusal =
  | "malformed"
  | "too_large"
  | "bad_timeout"
  | "bad_compression"
  | "busy"
  | "stalled"
  | "second_message";

/**
 * The answer, on either port, to a request its transport could not take.
 * Fixed texts: the transports' own messages can quote what was sent.
 */
export function requestRefused(
  method: DescMethodUnary,
  refusal: Refusal,
  limitBytes: number,
  /** The request encodings the port accepts, for bad_compression. */
  accepted = "gzip or br",
): ConnectError {
  const service = method.parent;
  switch (refusal) {
    case "too_large":
      return serviceError(
        service,
        Code.ResourceExhausted,
        "REQUEST_TOO_LARGE",
        `request larger than ${limitBytes} bytes`,
        { limit_bytes: String(limitBytes) },
      );
    case "busy":
      return serviceError(
        service,
        Code.ResourceExhausted,
        "RATE_LIMITED",
        "server busy: too many request bytes in flight; retry",
        {},
        [retryInfo(1000)],
      );
    case "stalled":
      return serviceError(
        service,
        Code.DeadlineExceeded,
        "DEADLINE_EXCEEDED",
        "request not received within the server's timeout",
      );
    case "bad_compression":
      return serviceError(
        service,
        Code.Unimplemented,
        "NOT_IMPLEMENTED",
        `request compression not supported (use ${accepted})`,
      );
    case "bad_timeout":
      return serviceError(
        service,
        Code.InvalidArgument,
        "VALIDATION_FAILED",
        "invalid timeout header",
      );
    case "second_message":
      // UNIMPLEMENTED, as gRPC servers answer a method called with a shape it does not have.
      return serviceError(
        service,
        Code.Unimplemented,
        "NOT_IMPLEMENTED",
        `${method.name} takes one request message`,
      );
    case "malformed":
      return serviceError(
        service,
        Code.InvalidArgument,
        "VALIDATION_FAILED",
        `request is not a valid ${method.input.typeName}`,
      );
  }
}
