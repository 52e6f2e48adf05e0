import {
  create,
  type DescFile,
  type DescMethodUnary,
  type DescService,
  type Message,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";

// The server's own small RPC dialect, the same on both ports: a Call (what
// the middleware chain sees of one unary RPC), Handler and Middleware over
// it, and services bound to their descriptors. Errors are connect's
// ConnectError values, built in errors.ts.

/** What the chain reads of a request's headers (Headers, or gRPC metadata read in place). */
export interface RequestHeader {
  get(name: string): string | null;
}

/**
 * One unary RPC as the middleware chain sees it, whichever transport carried
 * it. Built once per call and passed down as is: the chain adds nothing per
 * call that a call does not need (no abort machinery, no copies).
 */
export interface Call {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly request: Message;
  /** Absolute deadline (ms since epoch) set by the client, if any. */
  readonly deadline: number | undefined;
  readonly transport: "grpc" | "connect";
  readonly requestHeader: RequestHeader;
  /** The client's IP address, as the connection shows it (a proxy's, behind one). */
  readonly peer?: string;
  /**
   * Right before a write commits: throws DEADLINE_EXCEEDED once the deadline
   * has passed (nothing written); after it, the call answers the write's
   * outcome, late or not. Set by the deadline middleware.
   */
  beginCommit: () => void;
  /**
   * Set when the transport could not take the request (malformed, oversized):
   * `request` is then empty, and the chain answers this error, logging and
   * counting the call as any other.
   */
  readonly refused?: ConnectError;
  /** Who is calling; set by the authenticate middleware. */
  caller?: Caller;
}

/** A caller as authentication found it. */
export interface Caller {
  /** A configured token's name, "jwt:<subject>", or "anonymous". */
  readonly name: string;
  readonly scopes: ReadonlySet<string>;
  /** Why the caller is not authenticated; undefined when it is. */
  readonly problem?: AuthProblem;
}

/**
 * Why a call is not authenticated. Past "invalid", each names a rule a
 * validly signed JWT broke: its signer can be told which.
 */
export type AuthProblem =
  | "missing"
  | "invalid"
  | "too_large"
  | "expired"
  | "bad_subject"
  | "issued_in_future"
  | "no_issued_at"
  | "lifetime_too_long";

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

/** beginCommit for a call no deadline bounds. */
export const noDeadline = (): void => undefined;

export type Handler = (call: Call) => Promise<Message>;

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

type UnaryMethods<S extends DescService> = {
  [K in keyof S["method"] as S["method"][K] extends DescMethodUnary ? K : never]: S["method"][K];
};

/**
 * A service implementation: any subset of its unary methods, each taking the
 * request message and the call. Methods left out answer UNIMPLEMENTED.
 */
export type ServiceImpl<S extends DescService> = {
  [K in keyof UnaryMethods<S>]?: UnaryMethods<S>[K] extends DescMethodUnary<infer I, infer O>
    ? (request: MessageShape<I>, call: Call) => Promise<MessageInitShape<O>>
    : never;
};

/** One implemented method, its message types erased once bound. */
export type Implementation = (request: Message, call: Call) => Promise<Message>;

/** A service descriptor with its implemented methods, as both transports serve it. */
export interface ServiceBinding {
  service: DescService;
  /** Methods left out answer UNIMPLEMENTED. */
  methods: ReadonlyMap<DescMethodUnary, Implementation>;
  /** Files reflection serves beside the service's own: its error reasons. */
  files: DescFile[];
}

type AnyImplementation = (request: Message, call: Call) => Promise<Record<string, unknown>>;

/** Binds an implementation to its descriptor; `impl` is type-checked against it. */
export function bind<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  files: DescFile[] = [],
): ServiceBinding {
  const byName: Partial<Record<string, AnyImplementation>> = impl;
  const methods = new Map<DescMethodUnary, Implementation>();
  const unary = service.methods.filter((m): m is DescMethodUnary => m.methodKind === "unary");
  for (const method of unary) {
    const fn = byName[method.localName];
    if (fn)
      methods.set(method, async (request, call) => create(method.output, await fn(request, call)));
  }
  return { service, methods, files };
}
