import * as grpc from "@grpc/grpc-js";

// The one place that leans on @grpc/grpc-js past its documented API, so that
// an upgrade has one file to re-read and one test to fail
// (test/unit/seam_grpc_js.test.ts, which also checks the installed version
// against `writtenFor`). What is relied on:
//
// 1. The first server interceptor is handed grpc-js's own call (its
//    BaseServerInterceptingCall), and may return it as is: grpc-js then uses
//    only the ServerInterceptingCallInterface.
// 2. That call invokes its own sendStatus (its refusals: a bad grpc-timeout,
//    an oversized, undecompressable or unknown-encoded message), startRead
//    and start through the instance, so a method replaced on the instance
//    sees grpc-js's own uses of it too. Wrapping the call instead would need
//    an intercepting call, a listener chain and a continuation per event on
//    every call, and would still not see those refusals.
// 3. The fixed beginnings of its refusal texts (`refusalOf`).

/** The grpc-js versions this seam was written for: [from, below), major.minor. */
export const writtenFor = { from: [1, 14], below: [1, 15] } as const;

/** grpc-js's own server call, as the first interceptor is handed it. */
export type OwnCall = grpc.ServerInterceptingCallInterface;

type Replaceable = "sendStatus" | "start" | "startRead";

/**
 * Replaces `name` on grpc-js's own call by `wrap(original)`: grpc-js's own
 * calls of it go through the replacement too. Replacements stack: the last
 * made runs first.
 */
export function replaceOnOwnCall<K extends Replaceable>(
  call: OwnCall,
  name: K,
  wrap: (original: OwnCall[K]) => OwnCall[K],
): void {
  const original = (call[name] as (...args: unknown[]) => unknown).bind(call) as OwnCall[K];
  call[name] = wrap(original);
}

/** What the interceptor returns: grpc-js's own call itself (its type asks for its class). */
export const returnOwnCall = (call: OwnCall): grpc.ServerInterceptingCall =>
  call as grpc.ServerInterceptingCall;

/** What a status grpc-js produced itself says was wrong with the request. */
export type GrpcRefusal = "too_large" | "bad_timeout" | "bad_compression" | "malformed";

/**
 * Which refusal a status grpc-js produced stands for. Only its code and the
 * fixed beginnings of its own texts are read, never what the client sent
 * (which those texts may quote).
 */
export function refusalOf(status: { code: grpc.status; details?: string }): GrpcRefusal {
  const details = status.details ?? "";
  if (status.code === grpc.status.RESOURCE_EXHAUSTED) return "too_large";
  if (details.startsWith("Invalid grpc-timeout value")) return "bad_timeout";
  if (details.startsWith("Received message compressed with unsupported encoding"))
    return "bad_compression";
  return "malformed";
}
