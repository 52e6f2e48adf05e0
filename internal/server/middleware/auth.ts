import { rpcName } from "../../transport/call.js";
import type { AuthProblem } from "../../transport/caller.js";
import type { Guard } from "../../transport/middleware.js";
import { maxSubjectBytes } from "../auth/jwt.js";
import { methodScopes } from "../auth/scopes.js";
import { rpcErrors } from "../errors.js";

const problems: Record<AuthProblem, string> = {
  missing: "missing bearer token",
  invalid: "unknown or invalid token",
  too_large: "bearer token too large",
  expired: "token expired",
  bad_subject: `token sub must be a non-empty string of at most ${maxSubjectBytes} bytes`,
  issued_in_future: "token iat is in the future",
  no_issued_at: "token has no iat: required to bound its lifetime",
  lifetime_too_long: "token lifetime (exp - iat) over the maximum allowed",
};

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
