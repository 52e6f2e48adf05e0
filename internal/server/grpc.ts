import type { DescFile, DescService } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { file_google_rpc_error_details } from "../../third_party/google/rpc/error_details_pb.js";
import { file_google_rpc_status } from "../../third_party/google/rpc/status_pb.js";
import { file_grpc_health_v1_health } from "../../third_party/grpc/health/v1/health_pb.js";
import { file_grpc_reflection_v1_reflection } from "../../third_party/grpc/reflection/v1/reflection_pb.js";
import { grpcImplementation, grpcServerDefinition } from "./grpc_adapter.js";
import type { Route } from "./handlers.js";
import { addReflection } from "./reflection.js";

export interface GrpcServerOptions {
  addr: string;
  maxRequestBytes: number;
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
  /** Reports NOT_SERVING on grpc.health.v1, then lets in-flight calls finish
   *  for up to `timeoutMs`; true when they all did. */
  shutdown(timeoutMs: number): Promise<boolean>;
}

/** The gRPC port: both services, server reflection and grpc.health.v1. */
export async function startGrpcServer(opts: GrpcServerOptions): Promise<GrpcServer> {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": opts.maxRequestBytes,
  });
  for (const service of opts.services) {
    server.addService(grpcServerDefinition(service), grpcImplementation(service, opts.routes));
  }
  const names = opts.services.map((s) => s.typeName);
  const health = new HealthImplementation(
    Object.fromEntries(["", ...names].map((name) => [name, "SERVING" as const])),
  );
  health.addToServer(server);
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

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(opts.addr, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err
        ? reject(new Error(`gRPC server cannot listen on ${opts.addr}: ${err.message}`))
        : resolve(bound),
    ),
  );

  let stopping = false;
  const setStatus = (status: "SERVING" | "NOT_SERVING") => {
    for (const name of ["", ...names]) health.setStatus(name, status);
  };
  return {
    port,
    setServing: (ready) => {
      if (!stopping) setStatus(ready ? "SERVING" : "NOT_SERVING");
    },
    shutdown: (timeoutMs) => {
      stopping = true;
      setStatus("NOT_SERVING");
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve(false);
        }, timeoutMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
  };
}
