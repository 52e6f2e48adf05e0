import cluster from "node:cluster";
import { Gauge, Registry, collectDefaultMetrics, type Metric } from "prom-client";
import { FastHistogram } from "./histogram.js";
import type { Readiness } from "./readiness.js";

export interface RpcMetrics {
  duration: FastHistogram<"service" | "method" | "transport" | "code">;
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
  // Observed on every call: see FastHistogram.
  const duration = new FastHistogram(
    "rpc_server_duration_seconds",
    "Duration of unary RPCs handled, by service, method, transport and gRPC code.",
    ["service", "method", "transport", "code"] as const,
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  );
  registry.registerMetric(duration.asMetric());
  return { registry, rpc: { duration } };
}

/**
 * A value read at scrape from somewhere slower than memory (the database):
 * at most once per `ttlMs`, scrapes meanwhile sharing the last answer (a
 * failure too: a database in trouble is not asked more often). A read that
 * takes longer than `timeoutMs`, or fails, answers undefined (the series is
 * then left out, not stale) and never holds the scrape.
 */
export function readAtScrape<T>(
  read: () => Promise<T>,
  { ttlMs, timeoutMs }: { ttlMs: number; timeoutMs: number },
): () => Promise<T | undefined> {
  let last: { at: number; value: T | undefined } | undefined;
  let inFlight: Promise<T | undefined> | undefined;
  return async () => {
    if (last && performance.now() - last.at < ttlMs) return last.value;
    inFlight ??= read().then(
      (value) => value,
      () => undefined,
    );
    const reading = inFlight;
    // A late answer still lands in the cache for the next scrape.
    void reading.then((value) => {
      last = { at: performance.now(), value };
      if (inFlight === reading) inFlight = undefined;
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
    });
    try {
      return await Promise.race([reading, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
}

/** A gauge set at each scrape from `read` (absent while it answers undefined). */
export function scrapedGauge(
  name: string,
  help: string,
  read: () => Promise<number | undefined> | number | undefined,
): Gauge {
  return new Gauge({
    name,
    help,
    registers: [],
    async collect() {
      const value = await read();
      if (value === undefined) this.reset();
      else this.set(value);
    },
  });
}

/**
 * Readiness as series: `server_ready` 1 while every check passes (0 while
 * not, or shutting down), and each check's own state. Read from the
 * readiness watch's last round, so a scrape runs no check.
 */
export function readinessMetrics(
  state: () => Readiness | undefined,
  stopping: () => boolean,
): Metric[] {
  return [
    scrapedGauge(
      "server_ready",
      "1 while every readiness check passes (what /readyz answers 200 to), 0 while one fails or the server shuts down.",
      () => {
        const now = state();
        if (!now) return undefined;
        return now.ready && !stopping() ? 1 : 0;
      },
    ),
    new Gauge({
      name: "server_readiness_check",
      help: "1 while the named readiness check passes, 0 while it fails.",
      labelNames: ["check"] as const,
      registers: [],
      collect() {
        this.reset();
        for (const [check, passed] of Object.entries(state()?.passed ?? {}))
          this.set({ check }, passed ? 1 : 0);
      },
    }),
  ];
}
