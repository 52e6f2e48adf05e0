import type { DescFile, DescService } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { file_google_rpc_error_details } from "../../third_party/google/rpc/error_details_pb.js";
import { file_google_rpc_status } from "../../third_party/google/rpc/status_pb.js";
import { file_grpc_health_v1_health } from "../../third_party/grpc/health/v1/health_pb.js";
import { file_grpc_reflection_v1_reflection } from "../../third_party/grpc/reflection/v1/reflection_pb.js";
import type { ByteBudget } from "../pkg/limit/queue.js";
import { admissionInterceptor } from "./grpc_admission.js";
import { grpcImplementation, grpcServerDefinition } from "./grpc_adapter.js";
import type { Route } from "./handlers.js";
import { connectionListener, listen } from "./listen.js";
import type { TlsConfig } from "./tls.js";
import { addReflection } from "./reflection.js";
import { addHealthService } from "./seams/grpc_health_check.js";

export interface GrpcServerOptions {
  addr: string;
  maxRequestBytes: number;
  /** Request bytes held at once across all calls, shared with the HTTP port. */
  inflight: ByteBudget;
  /** How long a request may take to arrive once let in (server.grpc.timeout). */
  readTimeoutMs: number;
  /** A connection without calls is closed (GOAWAY) after this long. */
  idleMs: number;
  tls: TlsConfig | undefined;
  services: DescService[];
  /** More files for reflection: what error details and reasons clients decode. */
  files: DescFile[];
  routes: Route[];
}

export interface GrpcServer {
  /** The port actually bound (useful when addr asks for port 0). */
  port: number;
  /** Sets grpc.health.v1 for the server and every service: SERVING only when ready. */
  setServing(ready: boolean): void;
  /** NOT_SERVING from now on, while still accepting calls (the drain delay). */
  draining(): void;
  /** Reports NOT_SERVING on grpc.health.v1, then lets in-flight calls finish
   *  for up to `timeoutMs`; true when they all did. */
  shutdown(timeoutMs: number): Promise<boolean>;
}

/** The gRPC port: both services, server reflection and grpc.health.v1. */
export async function startGrpcServer(opts: GrpcServerOptions): Promise<GrpcServer> {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": opts.maxRequestBytes,
    "grpc.max_connection_idle_ms": opts.idleMs,
    // One interceptor: it wraps grpc-js's own call, and sees the refusals grpc-js makes.
    interceptors: [
      admissionInterceptor({
        routes: opts.routes,
        budget: opts.inflight,
        maxRequestBytes: opts.maxRequestBytes,
        readTimeoutMs: opts.readTimeoutMs,
      }),
    ],
  });
  for (const service of opts.services) {
    server.addService(
      grpcServerDefinition(service),
      grpcImplementation(service, opts.routes, opts.maxRequestBytes),
    );
  }
  const names = opts.services.map((s) => s.typeName);
  const health = new HealthImplementation(
    Object.fromEntries(["", ...names].map((name) => [name, "SERVING" as const])),
  );
  // Watch streams never end by themselves; they are ended at shutdown (after
  // the NOT_SERVING update) so that they do not hold it until the timeout.
  const watches = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  addHealthService(health, (definition, impl) =>
    server.addService(definition, {
      ...impl,
      watch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
        watches.add(call);
        call.on("close", () => watches.delete(call));
        call.on("cancelled", () => watches.delete(call));
        (impl.watch as (c: typeof call) => void)(call);
      },
    }),
  );
  const files: DescFile[] = [
    ...opts.services.map((s) => s.file),
    ...opts.files,
    // Every error carries these: a reflection-only client must decode them.
    file_google_rpc_status,
    file_google_rpc_error_details,
    file_grpc_health_v1_health,
    file_grpc_reflection_v1_reflection,
  ];
  addReflection(server, files, [...names, "grpc.health.v1.Health"]);

  // Our own listener, its connections handed to grpc-js: shutdown can then
  // close a connection that never spoke, which grpc-js's would wait for.
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const tls = opts.tls && { config: opts.tls, alpn: ["h2"] };
  const { listener, sockets, silent } = connectionListener(opts.idleMs, tls, (socket) =>
    injector.injectConnection(socket),
  );
  const port = await listen(listener, opts.addr).catch((err: Error) => {
    throw new Error(`gRPC server cannot listen on ${opts.addr}: ${err.message}`);
  });

  let stopping = false;
  // grpc-health-check tells every watcher of every call, changed or not; a
  // Watch stream is to see changes only (one NOT_SERVING per shutdown).
  let current: "SERVING" | "NOT_SERVING" = "SERVING";
  const setStatus = (status: "SERVING" | "NOT_SERVING") => {
    if (status === current) return;
    current = status;
    for (const name of ["", ...names]) health.setStatus(name, status);
  };
  return {
    port,
    setServing: (ready) => {
      if (!stopping) setStatus(ready ? "SERVING" : "NOT_SERVING");
    },
    draining: () => {
      stopping = true;
      setStatus("NOT_SERVING");
    },
    shutdown: (timeoutMs) => {
      stopping = true;
      setStatus("NOT_SERVING");
      for (const call of watches) call.end();
      listener.close();
      // A connection that never sent a byte has no call and no session to close.
      for (const socket of sockets) if (silent(socket)) socket.destroy();
      // Drained once grpc-js says so and every connection has closed, which
      // its session does once its last call ends. grpc-js alone is not
      // enough since Node 24: http2's server.close() now closes the sessions
      // itself, and tryShutdown takes a session already closing for closed,
      // so for connections handed over through its injector it calls back at
      // once, calls still running.
      const closed = [...sockets].map(
        (socket) => new Promise((resolve) => socket.once("close", resolve)),
      );
      const drained = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve(false);
        }, timeoutMs);
        const shutDown = new Promise((resolve) => server.tryShutdown(resolve));
        void Promise.all([shutDown, ...closed]).then(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      // Whatever is left once calls are done (a silent connection) goes too.
      return drained.finally(() => {
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
