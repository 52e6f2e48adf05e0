import { ConnectError } from "@connectrpc/connect";
import { codeName } from "../errors.js";
import type { Middleware } from "../../pkg/rpc/call.js";
import type { RpcMetrics } from "../metrics.js";

/** Counts and times every call by service, method, transport and code. */
export function metrics(rpc: RpcMetrics): Middleware {
  return (next) => async (call) => {
    const stop = rpc.duration.startTimer({
      service: call.service.typeName,
      method: call.method.name,
      transport: call.transport,
    });
    let code = "OK";
    try {
      return await next(call);
    } catch (err) {
      code = err instanceof ConnectError ? codeName(err.code) : "UNKNOWN";
      throw err;
    } finally {
      stop({ code });
    }
  };
}
