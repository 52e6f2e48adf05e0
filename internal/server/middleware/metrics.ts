import type { Call } from "../../transport/call.js";
import type { Observer } from "../../transport/middleware.js";
import type { RpcMetrics } from "../metrics.js";

type Child = ReturnType<RpcMetrics["duration"]["labels"]>;

/** Counts and times every call by service, method, transport and code. */
export function metricsObserver(rpc: RpcMetrics): Observer {
  // prom-client hashes the label set on every observation; the combinations
  // are few and fixed, so each is looked up once and kept: per method, per
  // transport and code.
  const children = new WeakMap<Call["method"], Map<string, Child>>();
  const child = (call: Call, code: string): Child => {
    let byMethod = children.get(call.method);
    if (!byMethod) {
      byMethod = new Map();
      children.set(call.method, byMethod);
    }
    const key = call.transport === "grpc" ? code : `connect:${code}`;
    let found = byMethod.get(key);
    if (!found) {
      found = rpc.duration.labels({
        service: call.service.typeName,
        method: call.method.name,
        transport: call.transport,
        code,
      });
      byMethod.set(key, found);
    }
    return found;
  };
  return (call, code, ms) => child(call, code).observe(ms / 1000);
}
