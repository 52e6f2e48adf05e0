import type { Logger } from "../../pkg/log/logger.js";
import type { Authenticator } from "../auth/authenticator.js";
import { rpcName, withValue } from "../../transport/call.js";
import { callerKey } from "../../transport/caller.js";
import type { Middleware, Observer } from "../../transport/middleware.js";
import { codeName, rpcErrors, toConnectError } from "../errors.js";
import type { PeerLimit } from "./peer_limit.js";

/**
 * The outermost step, one async frame for what every call needs around it:
 * finds the caller (`authorization: Bearer …`; it never refuses here, the
 * authorize guard does, so that refused calls are told apart in the log;
 * only an address past its limit of failed authentications is refused
 * here, unless it brings a configured token),
 * turns every failure into a ConnectError with a reason (unexpected faults
 * are logged with their stack and reach the client only as "internal
 * error"), and tells the observers (metrics, request log) how each call
 * ended.
 */
export function observe(opts: {
  authenticator: Authenticator;
  /** Failed authentications per peer address, refused past their limit. */
  peerLimit: PeerLimit | undefined;
  log: Logger;
  observers: Observer[];
}): Middleware {
  const { authenticator, peerLimit, log, observers } = opts;
  return (next) => async (received) => {
    const started = performance.now();
    let code = "OK";
    // The call as the observers see it: with its caller, once found.
    let call = received;
    try {
      const peer = peerLimit && call.peer;
      // An address past its limit keeps what costs a lookup (a configured
      // token: a caller sharing a proxy with a flood is still served) and is
      // refused the rest unverified.
      const closedMs = peer ? peerLimit.waitMs(peer) : 0;
      const found = authenticator(call.requestHeader.get("authorization"), closedMs > 0);
      // A configured token is known at once; a JWT is verified asynchronously.
      const caller = found instanceof Promise ? await found : found;
      call = withValue(received, callerKey, caller);
      if (closedMs > 0 && caller.problem)
        throw rpcErrors.authFailuresLimited(call.service, closedMs);
      if (peer && caller.problem) {
        const wait = peerLimit.failed(peer);
        if (wait > 0) throw rpcErrors.authFailuresLimited(call.service, wait);
      }
      return await next(call);
    } catch (err) {
      const error = toConnectError(err, call.service, (fault) =>
        log.error({ err: faultSummary(fault), rpc: rpcName(call) }, "unexpected fault in handler"),
      );
      code = codeName(error.code);
      throw error;
    } finally {
      const ms = performance.now() - started;
      for (const observer of observers) observer(call, code, ms);
    }
  };
}

// Only these fields: a driver error's other properties (a PostgreSQL error's
// `detail`, say) may quote the values involved.
function faultSummary(fault: unknown) {
  if (!(fault instanceof Error)) return { message: String(fault) };
  const { name, message, stack } = fault;
  return { name, message, stack, code: (fault as { code?: unknown }).code };
}
