import {
  create,
  type DescFile,
  type DescMethodUnary,
  type DescService,
  type Message,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import type { Call } from "./call.js";

// How a service implementation is bound to its descriptor, for both ports.

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
