import { rpcName, type Middleware } from "../call.js";
import type { Authenticator } from "../auth/authenticator.js";
import { methodScopes } from "../auth/scopes.js";
import { rpcErrors } from "../errors.js";

/**
 * Finds the caller from `authorization: Bearer …` and puts it on the call.
 * It never refuses: `authorize` does, inside the log and the error mapping,
 * so that refused calls are logged with who made them.
 */
export function authenticate(authenticator: Authenticator): Middleware {
  return (next) => (call) => {
    const found = authenticator(call.requestHeader.get("authorization"));
    // A configured token is known at once; a JWT is verified asynchronously.
    if (found instanceof Promise) {
      return found.then((caller) => {
        call.caller = caller;
        return next(call);
      });
    }
    call.caller = found;
    return next(call);
  };
}

const problems = {
  missing: "missing bearer token",
  invalid: "unknown or invalid token",
  expired: "token expired",
} as const;

/**
 * UNAUTHENTICATED without a valid token; PERMISSION_DENIED, naming the scope,
 * when the token lacks the one the method needs (methodScopes). Throws at
 * once (inside recovery, which maps both ways of failing).
 */
export function authorize(): Middleware {
  return (next) => (call) => {
    const caller = call.caller;
    if (!caller || caller.problem) {
      const message = problems[caller?.problem ?? "missing"];
      throw rpcErrors.unauthenticated(call.service, message);
    }
    const scope = methodScopes[rpcName(call)];
    if (!scope || !caller.scopes.has(scope)) {
      throw rpcErrors.permissionDenied(call.service, scope ?? "(none declared)");
    }
    return next(call);
  };
}
