import type { Message } from "@bufbuild/protobuf";
import type { Call } from "./call.js";

/** Answers one call: the service's implementation, wrapped in the chain. */
export type Handler = (call: Call) => Promise<Message>;

/** Wraps a handler; passes on the call it was given, or a copy with more values. */
export type Middleware = (next: Handler) => Handler;

/**
 * A check a call must pass before its handler runs: throws the ConnectError
 * refusing it, at once (no promise for a call let through).
 */
export type Guard = (call: Call) => void;

/** Told of every call once it is answered: its gRPC code name and duration. */
export type Observer = (call: Call, code: string, ms: number) => void;

/** Composes middleware; the first one listed runs outermost. */
export function chain(...middleware: Middleware[]): Middleware {
  return (handler) => middleware.reduceRight((next, mw) => mw(next), handler);
}
