import { ConnectError } from "@connectrpc/connect";
import { codeName } from "../errors.js";
import type { Logger } from "../../pkg/log/logger.js";
import { rpcName, type Middleware } from "../call.js";

/**
 * One structured line per call: method, caller, transport, code, duration.
 * Never payloads. Costs nothing when the level is above info.
 */
export function logging(root: Logger): Middleware {
  if (!root.isLevelEnabled("info")) return (next) => next;
  // The line's fields are fixed and carry no secret or personal data (the
  // caller is a token's configured name): the redaction every other line
  // goes through is skipped here, where it cost more than the line itself.
  const log = root.child({}, { redact: [] });
  return (next) => async (call) => {
    const started = performance.now();
    let code = "CANCELLED";
    try {
      const response = await next(call);
      code = "OK";
      return response;
    } catch (err) {
      code = err instanceof ConnectError ? codeName(err.code) : "UNKNOWN";
      throw err;
    } finally {
      const ms = Math.round((performance.now() - started) * 1000) / 1000;
      log.info(
        {
          rpc: rpcName(call),
          caller: call.caller?.name,
          transport: call.transport,
          code,
          ms,
        },
        "rpc",
      );
    }
  };
}
