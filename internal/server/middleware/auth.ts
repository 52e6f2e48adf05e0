import type { Middleware } from "../call.js";
import type { Authenticator } from "../auth/authenticator.js";
import { methodScopes } from "../auth/scopes.js";
import { rpcErrors } from "../errors.js";

/**
 * Finds the caller from `authorization: Bearer …` and puts it on the call.
 * It never refuses: `authorize` does, inside the log and the error mapping,
 * so that refused calls are logged with who made them.
 */
export function authenticate(authenticator: Authenticator): Middleware {
  return (next) => async (call) =>
    next({ ...call, caller: await authenticator(call.requestHeader.get("authorization")) });
}

const problems = {
  missing: "missing bearer token",
  invalid: "unknown or invalid token",
  expired: "token expired",
} as const;

/**
 * UNAUTHENTICATED without a valid token; PERMISSION_DENIED, naming the scope,
 * when the token lacks the one the method needs (methodScopes).
 */
export function authorize(): Middleware {
  return (next) => async (call) => {
    const caller = call.caller;
    if (!caller || caller.problem) {
      const message = problems[caller?.problem ?? "missing"];
      throw rpcErrors.unauthenticated(call.service, message);
    }
    const scope = methodScopes[`${call.service.typeName}/${call.method.name}`];
    if (!scope || !caller.scopes.has(scope)) {
      throw rpcErrors.permissionDenied(call.service, scope ?? "(none declared)");
    }
    return next(call);
  };
}
