import type { ByteBudget } from "../../pkg/limit/queue.js";
import type { DueQueue } from "../../pkg/timer/due.js";

/** What every call on the port shares. */
export interface CallOptions {
  /** Request bytes in flight, shared with the HTTP port. */
  budget: ByteBudget;
  maxRequestBytes: number;
  /** How long a request may take to arrive (server.grpc.timeout). */
  readTimeoutMs: number;
  /** The unary calls whose request has not all arrived yet, each due at its read timeout. */
  stalls: DueQueue;
}

/** The longest a message waits for room before its call is refused as busy. */
const MAX_WAIT_MS = 10_000;

/** How long a message may wait for room now: its call's deadline, at most 10 s. */
export const waitMs = (deadline: number | undefined) =>
  Math.min(MAX_WAIT_MS, (deadline ?? Infinity) - Date.now());

/** How long a request may take to arrive: the read timeout, or less if the deadline is sooner. */
export const stallMs = (opts: CallOptions, deadline: number | undefined, now: number) =>
  Math.max(0, Math.min(opts.readTimeoutMs, (deadline ?? Infinity) - now));
