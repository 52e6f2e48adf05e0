import { ConnectError } from "@connectrpc/connect";
import type { Middleware } from "../call.js";
import { codeName } from "../errors.js";
import type { RpcMetrics } from "../metrics.js";

/** Counts and times every call by service, method, transport and code. */
export function metrics(rpc: RpcMetrics): Middleware {
  // prom-client hashes the label set on every observation; the set of label
  // combinations is small and fixed, so keep one child per combination.
  const children = new Map<string, ReturnType<RpcMetrics["duration"]["labels"]>>();
  const child = (service: string, method: string, transport: string, code: string) => {
    const key = `${service}/${method}/${transport}/${code}`;
    let found = children.get(key);
    if (!found) {
      found = rpc.duration.labels({ service, method, transport, code });
      children.set(key, found);
    }
    return found;
  };
  return (next) => async (call) => {
    const started = performance.now();
    let code = "OK";
    try {
      return await next(call);
    } catch (err) {
      code = err instanceof ConnectError ? codeName(err.code) : "UNKNOWN";
      throw err;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      child(call.service.typeName, call.method.name, call.transport, code).observe(seconds);
    }
  };
}
