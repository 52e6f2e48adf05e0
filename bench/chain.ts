import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { SignJWT } from "jose";
import {
  HashFieldRequestSchema,
  HashFieldResponseSchema,
  KmsService,
} from "../api/kms/v1/kms_pb.js";
import { parseConfig } from "../internal/conf/load.js";
import { createLogger, type Logger } from "../internal/pkg/log/logger.js";
import { createAuthenticator } from "../internal/server/auth/authenticator.js";
import { buildRoutes } from "../internal/server/handlers.js";
import { createMetrics } from "../internal/server/metrics.js";
import { middlewareChain } from "../internal/server/middleware/index.js";
import { bind } from "../internal/transport/binding.js";
import { createCall } from "../internal/transport/call.js";
import { median } from "./lib/stats.js";

/** CPU microseconds per call of `call`, 32 in flight, after a warm-up (median of `rounds`). */
async function cpuPerCall(call: () => Promise<unknown>, calls: number, rounds: number) {
  const each: number[] = [];
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < calls / 5; i++) await call();
    const before = process.cpuUsage();
    let started = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (started++ < calls) await call();
      }),
    );
    const used = process.cpuUsage(before);
    each.push((used.user + used.system) / calls);
  }
  return median(each);
}

/**
 * The middleware chain in process (no transport): HashField calls whose
 * handler answers at once, through the whole chain (caller, guards with
 * validation, deadline, metrics, request log to /dev/null as the server
 * writes stdout), against the
 * bare handler. What the chain costs a call, apart from any transport.
 */
export async function chainInProcess(rounds = 5) {
  const dir = mkdtempSync(join(tmpdir(), "kbts-chain-"));
  try {
    // Printable, so the secret-file rule (one final newline dropped) never shortens it.
    const secret = Buffer.from(randomBytes(32).toString("base64url"));
    writeFileSync(join(dir, "hs256"), secret);
    const token = randomBytes(24).toString("base64url");
    const jwt = await new SignJWT({ scope: "kms.crypto" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("bench")
      .setAudience("bench")
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(secret);
    const answer = create(HashFieldResponseSchema, { hash: "0".repeat(64) });
    const request = create(HashFieldRequestSchema, { fieldName: "email", value: "a@b.example" });
    // The request log goes to /dev/null the way the server writes stdout
    // (gathered, asynchronous writes: internal/pkg/log).
    const devNull = openSync("/dev/null", "w");
    const logs: Logger[] = [];
    const chained = (level: string, sample: number, bearer: string) => {
      const conf = parseConfig(
        {
          kms: { root_key: Buffer.alloc(32, 7).toString("base64") },
          log: { level, request_sample: sample },
          auth: {
            tokens: [
              {
                name: "bench",
                sha256: createHash("sha256").update(token).digest("hex"),
                scopes: ["kms.crypto"],
              },
            ],
            jwt: { audience: "bench", hs256_secret_file: join(dir, "hs256") },
          },
        },
        "bench",
      );
      const log = createLogger({ level, format: "json", fd: devNull });
      logs.push(log);
      const [route] = buildRoutes(
        [bind(KmsService, { hashField: async () => answer })],
        middlewareChain({
          server: conf.server!,
          limits: conf.limits!,
          log,
          requestSample: conf.log!.requestSample,
          rpc: createMetrics().rpc,
          authenticator: createAuthenticator(conf.auth),
        }),
      ).filter((r) => r.method === KmsService.method.hashField);
      const requestHeader = { get: (name: string) => (name === "authorization" ? bearer : null) };
      return () =>
        route!.handler(
          createCall({
            service: KmsService,
            method: KmsService.method.hashField,
            request,
            deadline: undefined,
            transport: "grpc",
            requestHeader,
            peer: "127.0.0.1",
          }),
        );
    };
    const calls = 100_000;
    const bare = await cpuPerCall(async () => answer, calls, rounds);
    const rows: { name: string; us: number }[] = [];
    for (const [name, level, sample, bearer] of [
      ["configured token, log info", "info", 1, `Bearer ${token}`],
      ["configured token, request_sample 0.1", "info", 0.1, `Bearer ${token}`],
      ["configured token, log warn", "warn", 1, `Bearer ${token}`],
      ["HS256 JWT, log info", "info", 1, `Bearer ${jwt}`],
    ] as const) {
      rows.push({ name, us: await cpuPerCall(chained(level, sample, bearer), calls, rounds) });
    }
    await Promise.all(logs.map((l) => new Promise((done) => l.flush(done))));
    closeSync(devNull);
    return { bare, rows, calls, rounds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
