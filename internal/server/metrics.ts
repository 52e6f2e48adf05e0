import cluster from "node:cluster";
import { Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface RpcMetrics {
  duration: Histogram<"service" | "method" | "transport" | "code">;
}

export interface Metrics {
  registry: Registry;
  rpc: RpcMetrics;
}

/** A registry per server instance, so tests can run several side by side. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  // One process of several (server.processes) answers each scrape: its
  // series carry its worker id, so they neither collide nor jump.
  if (cluster.isWorker) registry.setDefaultLabels({ worker: String(cluster.worker!.id) });
  collectDefaultMetrics({ register: registry });
  const duration = new Histogram({
    name: "rpc_server_duration_seconds",
    help: "Duration of unary RPCs handled, by service, method, transport and gRPC code.",
    labelNames: ["service", "method", "transport", "code"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return { registry, rpc: { duration } };
}
