import type { Logger } from "../../pkg/log/logger.js";
import type { Authenticator } from "../auth/authenticator.js";
import { rpcName, type Middleware, type Observer } from "../call.js";
import { codeName, toConnectError } from "../errors.js";

/**
 * The outermost step, one async frame for what every call needs around it:
 * finds the caller (`authorization: Bearer …`; it never refuses here, the
 * authorize guard does, so that refused calls are told apart in the log),
 * turns every failure into a ConnectError with a reason (unexpected faults
 * are logged with their stack and reach the client only as "internal
 * error"), and tells the observers (metrics, request log) how each call
 * ended.
 */
export function observe(opts: {
  authenticator: Authenticator;
  log: Logger;
  observers: Observer[];
}): Middleware {
  const { authenticator, log, observers } = opts;
  return (next) => async (call) => {
    const started = performance.now();
    let code = "OK";
    try {
      const found = authenticator(call.requestHeader.get("authorization"));
      // A configured token is known at once; a JWT is verified asynchronously.
      call.caller = found instanceof Promise ? await found : found;
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
