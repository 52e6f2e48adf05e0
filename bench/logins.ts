import { create, toBinary } from "@bufbuild/protobuf";
import { createHash } from "node:crypto";
import { Writable } from "node:stream";
import { UserService, VerifyPasswordRequestSchema } from "../api/user/v1/user_pb.js";
import { wireApp } from "../cmd/server/wire.js";
import { parseConfig } from "../internal/conf/load.js";
import { createLogger } from "../internal/pkg/log/logger.js";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { runLoad, type LoadResult } from "./lib/load.js";

/** p50 of one call at a time for `seconds`. */
async function p50(seconds: number, call: (i: number) => Promise<unknown>) {
  const latencies: number[] = [];
  const until = Date.now() + seconds * 1000;
  for (let i = 0; Date.now() < until || latencies.length < 3; i++) {
    const started = performance.now();
    await call(i);
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);
  return { calls: latencies.length, p50ms: latencies[Math.floor(latencies.length / 2)]! };
}

const tokens = { front: "bench-front-token", flooder: "bench-flooder-token" };
const sha256 = (t: string) => createHash("sha256").update(t).digest("hex");

/**
 * A login flood from one caller against another: a good login's and
 * CreateUser's p50 (one call at a time, on the main thread as the server),
 * idle and while 32 concurrent VerifyPassword calls of another token (an
 * unknown login, the login lock off so every admitted one costs a decoy
 * scrypt) hammer the same server from a worker. Per-caller admission of
 * password hashing (limits.password_hash*) is what keeps the ratios down.
 */
export async function loginFloodBench(url: string, seconds: number) {
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const conf = parseConfig(
    {
      server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" } },
      data: { database: { source: url, migrate: "up" } },
      kms: { root_key: Buffer.alloc(32, 6).toString("base64") },
      auth: {
        enabled: true,
        max_login_attempts: 0,
        tokens: [
          { name: "front", sha256: sha256(tokens.front), scopes: ["users.login", "users.write"] },
          { name: "flooder", sha256: sha256(tokens.flooder), scopes: ["users.login"] },
        ],
      },
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
      createGrpcTransport({
        baseUrl: `http://127.0.0.1:${app.grpcPort}`,
        interceptors: [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${tokens.front}`);
            return next(req);
          },
        ],
      }),
    );
    const password = "passw0rd-long";
    await users.createUser({ username: "flood_reader", password, email: "reader@example.com" });
    const login = () => users.verifyPassword({ login: "flood_reader", password });
    let created = 0;
    const createUser = () => {
      const username = `flood_new_${process.pid}_${created++}`;
      return users.createUser({ username, password, email: `${username}@example.com` });
    };
    const measure = async () => ({
      login: await p50(seconds, login),
      create: await p50(seconds, createUser),
    });
    await p50(1, login); // warm-up
    const idle = await measure();
    const flood = runLoad({
      port: app.grpcPort,
      path: "/user.v1.UserService/VerifyPassword",
      request: toBinary(
        VerifyPasswordRequestSchema,
        create(VerifyPasswordRequestSchema, { login: "nobody", password: "wrong-pass1" }),
      ),
      token: tokens.flooder,
      concurrency: 32,
      warmupSeconds: 1,
      seconds: 2 * seconds + 1,
    });
    await new Promise((r) => setTimeout(r, 1000));
    const during = await measure();
    const logins: LoadResult = await flood;
    return { idle, during, logins };
  } finally {
    await app.stop();
  }
}
