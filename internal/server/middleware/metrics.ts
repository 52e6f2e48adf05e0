import type { Call } from "../../transport/call.js";
import type { Observer } from "../../transport/middleware.js";
import type { HistogramSeries } from "../histogram.js";
import type { RpcMetrics } from "../metrics.js";

/** Counts and times every call by service, method, transport and code. */
export function metricsObserver(rpc: RpcMetrics): Observer {
  // Each combination's series is looked up once and kept: per method, per
  // transport, per code (no key is built on a call).
  const children = new WeakMap<
    Call["method"],
    Record<Call["transport"], Map<string, HistogramSeries>>
  >();
  const series = (call: Call, code: string): HistogramSeries => {
    let byMethod = children.get(call.method);
    if (!byMethod) {
      byMethod = { grpc: new Map(), connect: new Map(), rest: new Map() };
      children.set(call.method, byMethod);
    }
    const byCode = byMethod[call.transport];
    let found = byCode.get(code);
    if (!found) {
      found = rpc.duration.labels({
        service: call.service.typeName,
        method: call.method.name,
        transport: call.transport,
        code,
      });
      byCode.set(code, found);
    }
    return found;
  };
  return (call, code, ms) => series(call, code).observe(ms / 1000);
}
