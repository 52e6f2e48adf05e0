import { ConnectError } from "@connectrpc/connect";
import { codeName } from "../errors.js";
import type { Logger } from "../../pkg/log/logger.js";
import type { Middleware } from "../call.js";

/** One structured line per call: method, caller, transport, code, duration. Never payloads. */
export function logging(log: Logger): Middleware {
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
          rpc: `${call.service.typeName}/${call.method.name}`,
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
