import { create, type DescMethodUnary, type DescService } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { ServiceBinding } from "../transport/binding.js";
import { createCall, type Call, type RequestHeader } from "../transport/call.js";
import type { Handler, Middleware } from "../transport/middleware.js";
import { rpcErrors } from "./errors.js";

/** A method ready to serve: its descriptors and its handler wrapped in the chain. */
export interface Route {
  service: DescService;
  method: DescMethodUnary;
  handler: Handler;
}

/**
 * Builds one chained handler per unary method of each bound service. Both
 * transports serve these same handlers. Methods without an implementation
 * answer UNIMPLEMENTED (after validation, logging and metrics, like any other).
 */
export function buildRoutes(bindings: ServiceBinding[], middleware: Middleware): Route[] {
  return bindings.flatMap(({ service, methods }) =>
    service.methods
      .filter((m): m is DescMethodUnary => m.methodKind === "unary")
      .map((method) => {
        const fn = methods.get(method);
        const inner: Handler = fn
          ? (call) => fn(call.request, call)
          : async (call) => {
              throw rpcErrors.notImplemented(call.service, `${service.typeName}.${method.name}`);
            };
        return { service, method, handler: middleware(inner) };
      }),
  );
}

/**
 * Runs a call its transport refused (`error`) through the route's chain, so
 * that it is logged and counted as any other (its failed authentication
 * too, against `peer`); resolves with what to answer.
 */
export async function refuse(
  route: Route,
  transport: Call["transport"],
  requestHeader: RequestHeader,
  error: ConnectError,
  peer?: string,
): Promise<ConnectError> {
  const call = createCall({
    service: route.service,
    method: route.method,
    request: create(route.method.input),
    deadline: undefined,
    transport,
    requestHeader,
    peer,
    refused: error,
  });
  return route.handler(call).then(
    () => error,
    (e: unknown) => (e instanceof ConnectError ? e : error),
  );
}
