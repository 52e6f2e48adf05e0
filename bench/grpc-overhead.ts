import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { GetUserRequestSchema } from "../api/user/v1/user_pb.js";
import { UserService } from "../api/user/v1/user_pb.js";
import { parseConfig } from "../internal/conf/load.js";
import { createLogger } from "../internal/pkg/log/logger.js";
import { serviceError, toGrpcStatus } from "../internal/server/errors.js";
import { wireApp } from "../cmd/server/wire.js";
import { startBareServer } from "./lib/bare.js";
import { runLoad, type LoadResult } from "./lib/load.js";

/**
 * What our gRPC port costs per call: the full service (grpc-js adapter,
 * middleware chain with metrics, request log, recovery, deadline and
 * validation, the error mapping) answering GetUser, against a bare grpc-js
 * server that decodes the same request and answers the same status and
 * details, prepared once. Both are driven by the same client in the same run.
 */
export async function grpcOverhead(
  databaseUrl: string,
  seconds: number,
): Promise<{ ours: LoadResult; bare: LoadResult }> {
  const request = toBinary(GetUserRequestSchema, create(GetUserRequestSchema, { id: 1n }));
  const path = `/${UserService.typeName}/${UserService.method.getUser.name}`;
  const load = (port: number) =>
    runLoad({ port, path, request, concurrency: 32, warmupSeconds: 1, seconds });

  const bare = await startBare(path);
  const bareResult = await load(bare.port);
  bare.stop();

  const conf = parseConfig(
    {
      server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" } },
      data: { database: { source: databaseUrl, migrate: "up" } },
      kms: { root_key: Buffer.alloc(32, 9).toString("base64") },
    },
    "bench",
  );
  // Request logs go to a discarded stream: the cost of writing them is real
  // and stays in the measurement, the terminal stays readable.
  const { Writable } = await import("node:stream");
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const app = await wireApp(
    conf,
    createLogger({ level: "info", format: "json", destination: sink }),
  );
  const ours = await load(app.grpcPort);
  await app.stop();
  return { ours, bare: bareResult };
}

async function startBare(path: string) {
  const status = toGrpcStatus(
    serviceError(
      UserService,
      12,
      "NOT_IMPLEMENTED",
      "user.v1.UserService.GetUser is not implemented yet",
    ),
  );
  return startBareServer(path, (call, callback) => {
    fromBinary(GetUserRequestSchema, call.request);
    callback(status as grpc.ServiceError, null);
  });
}
