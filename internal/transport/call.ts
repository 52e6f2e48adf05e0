import type { DescMethodUnary, DescService, Message } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { callerKey, type Caller } from "./caller.js";
import {
  createContextKey,
  emptyContextValues,
  type ContextKey,
  type ContextValues,
} from "./context_values.js";

// The server's own small RPC dialect, the same on both ports, in a package
// that both the services (which implement it) and the server (which carries
// it) import. Errors are connect's ConnectError values.

/** What the chain reads of a request's headers (Headers, or gRPC metadata read in place). */
export interface RequestHeader {
  get(name: string): string | null;
}

/**
 * One unary RPC as the middleware chain sees it, whichever transport carried
 * it. Immutable: what is learnt on the way (the caller, the commit gate) is
 * attached as typed values, with `withValue`, to a new Call handed further
 * in. Nothing in it is writable through its type, and `caller` has no
 * setter. Not also frozen at run time: Object.freeze cost a call about
 * 0.75 µs here, some fifteen times what making its three Calls does.
 */
export interface Call {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly request: Message;
  /** Absolute deadline (ms since epoch) set by the client, if any. */
  readonly deadline: number | undefined;
  readonly transport: "grpc" | "connect" | "rest";
  readonly requestHeader: RequestHeader;
  /** The client's IP address, as the connection shows it (a proxy's, behind one). */
  readonly peer?: string;
  /**
   * Set when the transport could not take the request (malformed, oversized):
   * `request` is then empty, and the chain answers this error, logging and
   * counting the call as any other.
   */
  readonly refused?: ConnectError;
  /** What was attached as the call travelled. */
  readonly values: ContextValues;
  /** `values.get(callerKey)`: who is calling (what biz's Context reads). */
  readonly caller?: Caller;
  /**
   * Right before a write commits: throws DEADLINE_EXCEEDED once the deadline
   * has passed (nothing written); after it, the call answers the write's
   * outcome, late or not. Runs the gate under commitGateKey (biz's Context).
   */
  readonly beginCommit: () => void;
}

/** What a transport knows of a call when it makes one. */
export type CallInit = Omit<Call, "values" | "caller" | "beginCommit">;

/** The commit gate (see Call.beginCommit); attached by the deadline middleware. */
export const commitGateKey = createContextKey<() => void>(() => undefined, "commit gate");

// Fields copied one by one, not spread: every Call then has one shape.
class TransportCall implements Call {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly request: Message;
  readonly deadline: number | undefined;
  readonly transport: "grpc" | "connect" | "rest";
  readonly requestHeader: RequestHeader;
  readonly peer: string | undefined;
  readonly refused: ConnectError | undefined;

  constructor(
    init: CallInit,
    readonly values: ContextValues,
  ) {
    this.service = init.service;
    this.method = init.method;
    this.request = init.request;
    this.deadline = init.deadline;
    this.transport = init.transport;
    this.requestHeader = init.requestHeader;
    this.peer = init.peer;
    this.refused = init.refused;
  }

  // The two views biz's Context reads, derived from the values so that they
  // cannot disagree with them.
  get caller(): Caller | undefined {
    return this.values.get(callerKey);
  }

  beginCommit(): void {
    this.values.get(commitGateKey)();
  }
}

/** A Call with nothing attached yet (or `values`). */
export function createCall(init: CallInit, values: ContextValues = emptyContextValues): Call {
  return new TransportCall(init, values);
}

/** The same call with `key` = `value` attached; `call` itself is unchanged. */
export function withValue<T>(call: Call, key: ContextKey<T>, value: T): Call {
  return new TransportCall(call, call.values.with(key, value));
}

const names = new WeakMap<DescMethodUnary, string>();

/** "pkg.Service/Method", computed once per method (logs, metrics and scopes use it on every call). */
export function rpcName(call: Pick<Call, "service" | "method">): string {
  let name = names.get(call.method);
  if (name === undefined) {
    name = `${call.service.typeName}/${call.method.name}`;
    names.set(call.method, name);
  }
  return name;
}
