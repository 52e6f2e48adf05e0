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

/** p50 of one call at a time for `seconds`, and of at least 9 calls (each costs an scrypt). */
async function p50(seconds: number, call: () => Promise<unknown>) {
  const latencies: number[] = [];
  const started = Date.now();
  while (Date.now() < started + seconds * 1000 || latencies.length < 9) {
    const at = performance.now();
    await call();
    latencies.push(performance.now() - at);
  }
  latencies.sort((a, b) => a - b);
  return {
    calls: latencies.length,
    p50ms: latencies[Math.floor(latencies.length / 2)]!,
    seconds: (Date.now() - started) / 1000,
  };
}

const tokens = {
  front: "bench-front-token",
  flooder: "bench-flooder-token",
  stranger: "bench-stranger-token",
};
const sha256 = (t: string) => createHash("sha256").update(t).digest("hex");

/**
 * A login flood from one caller against another: a good login's and
 * CreateUser's p50 (one call at a time, on the main thread as the server),
 * idle and while 32 concurrent VerifyPassword calls of another token (an
 * unknown login, the login lock off so every admitted one costs a decoy
 * scrypt) hammer the same server from a worker. Per-caller admission of
 * password hashing (limits.password_hash*) is what keeps the ratios down.
 * For reference, the good login also under the same flood from a token
 * without users.login: what answering 32 refusals at a time costs alone,
 * before any hash.
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
          { name: "stranger", sha256: sha256(tokens.stranger), scopes: ["users.read"] },
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
    // Long enough for the same measurements four times slower; checked below.
    const floodSeconds = Math.ceil(4 * (idle.login.seconds + idle.create.seconds)) + 1;
    const invalid: string[] = [];
    const underFlood = async <T>(token: string, work: () => Promise<T>) => {
      const ends = Date.now() + (floodSeconds + 1) * 1000;
      const flood = runLoad({
        port: app.grpcPort,
        path: "/user.v1.UserService/VerifyPassword",
        request: toBinary(
          VerifyPasswordRequestSchema,
          create(VerifyPasswordRequestSchema, { login: "nobody", password: "wrong-pass1" }),
        ),
        token,
        concurrency: 32,
        warmupSeconds: 1,
        seconds: floodSeconds,
      });
      await new Promise((r) => setTimeout(r, 1000));
      const measured = await work();
      if (Date.now() > ends) invalid.push("a flood ended before its measurements");
      return { measured, flood: await flood };
    };
    const refusals = await underFlood(tokens.stranger, () => p50(seconds, login));
    const during = await underFlood(tokens.flooder, measure);
    const logins: LoadResult = during.flood;
    return { idle, during: during.measured, refusalsOnly: refusals.measured, logins, invalid };
  } finally {
    await app.stop();
  }
}
