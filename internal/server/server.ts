import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Metric } from "prom-client";
import type { Auth, Limits, Server } from "../conf/conf_pb.js";
import { createAuthenticator } from "./auth/authenticator.js";
import type { Logger } from "../pkg/log/logger.js";
import type { ServiceBinding } from "../transport/binding.js";
import { startGrpcServer } from "./grpc/server.js";
import { buildRoutes } from "./handlers.js";
import { startHttpServer } from "./http.js";
import { tlsConfig } from "./tls.js";
import { watchReadiness, type ReadinessCheck } from "./readiness.js";
import { createMetrics, readinessMetrics } from "./metrics.js";
import { byteBudget } from "../pkg/limit/queue.js";
import { givingBack, majorCollection } from "../pkg/limit/give_back.js";
import { middlewareChain } from "./middleware/index.js";
import { readOpenApi } from "./openapi.js";

export interface Servers {
  grpcPort: number;
  httpPort: number;
  /** Re-reads the TLS files (SIGHUP); false without TLS. Throws, keeping
   *  the current certificate, when the files do not load. */
  reloadTls(): boolean;
  /** Stops both ports, letting in-flight calls finish within the
   *  configured shutdown_timeout; true when none had to be cut. */
  shutdown(): Promise<boolean>;
}

/** Starts the gRPC and HTTP ports serving the same chained handlers. */
export async function startServers(
  conf: Server,
  auth: Auth | undefined,
  limits: Limits,
  bindings: ServiceBinding[],
  readiness: Record<string, ReadinessCheck>,
  log: Logger,
  /** Series of the use cases and the database (the audit trail, migrations, the pool) served beside the RPC metrics. */
  extraMetrics: Metric[] = [],
  /** log.request_sample: the fraction of successful calls given a request log line. */
  requestSample = 1,
): Promise<Servers> {
  // Before anything listens: without it the server does not start.
  const openApi = readOpenApi();
  const { registry, rpc } = createMetrics();
  for (const metric of extraMetrics) registry.registerMetric(metric);
  const authenticator = createAuthenticator(auth);
  if (auth?.enabled && auth.tokens.length === 0 && !auth.jwt) {
    log.warn(
      "authentication is on with no tokens and no JWT keys: every RPC will answer UNAUTHENTICATED",
    );
  }
  const routes = buildRoutes(
    bindings,
    middlewareChain({ server: conf, limits, log, requestSample, rpc, authenticator }),
  );
  let stopping = false;
  // Every duration has its default from internal/conf.
  const idleMs = durationMs(conf.idleTimeout!);
  const tls = tlsConfig(conf.tls);
  // A gRPC call waiting for room keeps up to a stream window (64 KiB) of its
  // request in HTTP/2 buffers: their number is bounded too.
  const inflight = givingBack(byteBudget(conf.maxInflightRequestBytes, 1024), {
    burstBytes: 64 * 2 ** 20,
    quietMs: 1000,
    collect: majorCollection(),
  });
  const g = conf.grpc!;
  const grpc = await startGrpcServer({
    addr: g.addr,
    maxRequestBytes: g.maxRequestBytes,
    inflight,
    readTimeoutMs: durationMs(g.timeout!),
    idleMs,
    maxConcurrentStreams: g.maxConcurrentStreams,
    // Room for the largest token auth.max_token_bytes allows (64 KiB) beside
    // the usual headers: a token over its limit reaches the chain, to be
    // refused by name, rather than the call being reset.
    maxHeaderBytes: 72 * 1024,
    streamWindowBytes: g.streamWindowBytes,
    connectionWindowBytes: g.connectionWindowBytes,
    keepaliveTimeMs: durationMs(g.keepaliveTime!),
    keepaliveTimeoutMs: durationMs(g.keepaliveTimeout!),
    minPingIntervalMs: durationMs(g.minPingInterval!),
    // A quarter of the budget per address, room for one whole message at least.
    announcedPerPeerBytes: Math.max(g.maxRequestBytes, conf.maxInflightRequestBytes / 4),
    tls,
    services: bindings.map((b) => b.service),
    files: bindings.flatMap((b) => b.files),
    routes,
  });
  const http = await startHttpServer({
    addr: conf.http!.addr,
    maxRequestBytes: conf.http!.maxRequestBytes,
    idleMs,
    callTimeoutMs: durationMs(conf.http!.timeout!),
    tls,
    inflight,
    corsAllowedOrigins: conf.http!.corsAllowedOrigins,
    routes,
    readiness,
    registry,
    metricsAuthenticator: auth?.protectMetrics ? authenticator : undefined,
    stopping: () => stopping,
    packages: new Set(bindings.map((b) => b.service.file.proto.package)),
    openApi,
    log,
  }).catch(async (err: unknown) => {
    await grpc.shutdown(0);
    throw err;
  });
  log.info(
    { grpc: grpc.port, http: http.port, tls: tls ? (tls.mutual ? "mutual" : "on") : "off" },
    "listening: gRPC and HTTP (Connect, gRPC-Web)",
  );
  const watch = watchReadiness(readiness, (ready) => grpc.setServing(ready), log);
  for (const metric of readinessMetrics(watch.state, () => stopping))
    registry.registerMetric(metric);
  const timeoutMs = durationMs(conf.shutdownTimeout!);
  const drainDelayMs = durationMs(conf.drainDelay!);
  return {
    grpcPort: grpc.port,
    httpPort: http.port,
    reloadTls: () => {
      // New connections get the new certificate; open ones keep theirs.
      if (!tls) return false;
      tls.reload();
      return true;
    },
    shutdown: async () => {
      // Unready at once on both ports, still accepting while balancers notice.
      stopping = true;
      watch.stop();
      grpc.draining();
      if (drainDelayMs > 0) {
        log.info({ drainDelayMs }, "draining: not ready, still accepting");
        await new Promise((r) => setTimeout(r, drainDelayMs));
      }
      const [a, b] = await Promise.all([grpc.shutdown(timeoutMs), http.shutdown(timeoutMs)]);
      return a && b;
    },
  };
}
