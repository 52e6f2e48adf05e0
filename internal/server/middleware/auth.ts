import { rpcName, type Guard } from "../call.js";
import { methodScopes } from "../auth/scopes.js";
import { rpcErrors } from "../errors.js";

const problems = {
  missing: "missing bearer token",
  invalid: "unknown or invalid token",
  expired: "token expired",
} as const;

/**
 * UNAUTHENTICATED without a valid token; PERMISSION_DENIED, naming the scope,
 * when the token lacks the one the method needs (methodScopes). The caller
 * was found by `observe`, outside, so that refused calls are logged with who
 * made them.
 */
export const authorize: Guard = (call) => {
  const caller = call.caller;
  if (!caller || caller.problem) {
    const message = problems[caller?.problem ?? "missing"];
    throw rpcErrors.unauthenticated(call.service, message);
  }
  const scope = methodScopes[rpcName(call)];
  if (!scope || !caller.scopes.has(scope)) {
    throw rpcErrors.permissionDenied(call.service, scope ?? "(none declared)");
  }
};
