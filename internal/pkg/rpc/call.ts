import type {
  DescFile,
  DescMethodUnary,
  DescService,
  Message,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";

/** One unary RPC as the middleware chain sees it, whichever transport carried it. */
export interface Call {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly request: Message;
  /** Aborted when the client goes away or the deadline passes. */
  readonly signal: AbortSignal;
  /** Absolute deadline (ms since epoch) set by the client, if any. */
  readonly deadline: number | undefined;
  readonly transport: "grpc" | "connect";
  readonly requestHeader: Headers;
  /**
   * Right before a write commits: throws DEADLINE_EXCEEDED once the deadline
   * has passed (nothing written); after it, the call answers the write's
   * outcome, late or not. Set by the deadline middleware.
   */
  readonly beginCommit: () => void;
  /**
   * Set when the transport could not take the request (malformed, oversized):
   * `request` is then empty, and the chain answers this error, logging and
   * counting the call as any other.
   */
  readonly refused?: ConnectError;
  /** Who is calling; set by the authenticate middleware. */
  readonly caller?: Caller;
}

/** A caller as authentication found it. */
export interface Caller {
  /** A configured token's name, "jwt:<subject>", or "anonymous". */
  readonly name: string;
  readonly scopes: ReadonlySet<string>;
  /** Why the caller is not authenticated; undefined when it is. */
  readonly problem?: "missing" | "invalid" | "expired";
}

/** beginCommit for a call no deadline bounds. */
export const noDeadline = (): void => undefined;

export type Handler = (call: Call) => Promise<Message>;

export type Middleware = (next: Handler) => Handler;

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

/** A service descriptor with its implementation, as registered on both transports. */
export interface ServiceBinding<S extends DescService = DescService> {
  service: S;
  impl: ServiceImpl<S>;
  /** Files reflection serves beside the service's own: its error reasons. */
  files: DescFile[];
}

/** Pairs a descriptor with its implementation, keeping the types tied. */
export function bind<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  files: DescFile[] = [],
): ServiceBinding {
  return { service, impl, files } as unknown as ServiceBinding;
}
