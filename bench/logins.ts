import { create, toBinary } from "@bufbuild/protobuf";
import { Writable } from "node:stream";
import {
  GetUserRequestSchema,
  UserService,
  VerifyPasswordRequestSchema,
} from "../api/user/v1/user_pb.js";
import { wireApp } from "../cmd/server/wire.js";
import { parseConfig } from "../internal/conf/load.js";
import { createLogger } from "../internal/pkg/log/logger.js";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { runLoad, type LoadResult } from "./lib/load.js";

/**
 * A login flood against another caller: GetUser latency at concurrency 4,
 * alone and while 32 concurrent VerifyPassword calls (wrong passwords, the
 * login lock off so every one costs an scrypt) hammer the same server. The
 * hashing queue (limits.password_hash_*) is what keeps the ratio down.
 */
export async function loginFloodBench(url: string, seconds: number) {
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const conf = parseConfig(
    {
      server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" } },
      data: { database: { source: url, migrate: "up" } },
      kms: { root_key: Buffer.alloc(32, 6).toString("base64") },
      auth: { enabled: false, max_login_attempts: 0 },
    },
    "bench",
  );
  const app = await wireApp(
    conf,
    createLogger({ level: "info", format: "json", destination: sink }),
  );
  try {
    const users = createClient(
      UserService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` }),
    );
    const { user } = await users.createUser({
      username: "flood_reader",
      password: "passw0rd-long",
      email: "reader@example.com",
    });
    const get = {
      port: app.grpcPort,
      path: "/user.v1.UserService/GetUser",
      request: toBinary(GetUserRequestSchema, create(GetUserRequestSchema, { id: user!.id })),
      concurrency: 4,
      warmupSeconds: 1,
      seconds,
    };
    const alone = await runLoad(get);
    const flood = runLoad({
      port: app.grpcPort,
      path: "/user.v1.UserService/VerifyPassword",
      request: toBinary(
        VerifyPasswordRequestSchema,
        create(VerifyPasswordRequestSchema, { login: "flood_reader", password: "wrong-pass1" }),
      ),
      concurrency: 32,
      warmupSeconds: 0,
      seconds: seconds + 2,
    });
    await new Promise((r) => setTimeout(r, 1000));
    const during = await runLoad(get);
    const logins: LoadResult = await flood;
    return { alone, during, logins };
  } finally {
    await app.stop();
  }
}
