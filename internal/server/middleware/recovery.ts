import type { Logger } from "../../pkg/log/logger.js";
import { rpcName, type Middleware } from "../call.js";
import { toConnectError } from "../errors.js";

/**
 * Turns every failure into a ConnectError with a reason. Unexpected faults
 * are logged here with their stack and reach the client only as
 * "internal error": no internals leak.
 */
export function recovery(log: Logger): Middleware {
  return (next) => (call) => {
    const mapped = (err: unknown) =>
      toConnectError(err, call.service, (fault) =>
        log.error({ err: faultSummary(fault), rpc: rpcName(call) }, "unexpected fault in handler"),
      );
    // The middleware inside may refuse by throwing at once (no promise per
    // layer): both ways end here.
    try {
      return next(call).catch((err: unknown) => {
        throw mapped(err);
      });
    } catch (err) {
      return Promise.reject(mapped(err));
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
