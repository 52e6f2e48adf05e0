import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";
import { parseConfig, type Config } from "../../internal/conf/load.js";
import { nodeFlags, startEnv } from "./start.js";

const AUDIENCE = "kbts-bench";
const SCOPES = ["kms.crypto", "users.read", "pii.read", "metrics.read"];

/**
 * The service as a user runs it, for the benchmarks: the built server
 * (dist/, what `npm start` runs, with the Node flags it passes) in a process
 * of its own, authentication on with JWTs (auth.jwt, HS256: a signed token
 * verified on every call), logging at info as in production.
 */
export interface BenchServer {
  grpcPort: number;
  httpPort: number;
  /** The server's process (the primary, with server.processes > 1). */
  pid: number;
  /** A JWT (sub "bench", 12 h) with kms.crypto, users.read, pii.read and metrics.read. */
  token: string;
  /** Its configuration, for seeding through the same keys. */
  conf: Config;
  processes: number;
  stop(): Promise<void>;
}

export async function startBenchServer(
  url: string,
  rootKey: Buffer,
  /** server.processes: 2 runs one per core behind the same ports. */
  processes = 1,
  /** log.request_sample: the fraction of successful calls with a line (1: every call). */
  requestSample = 1,
): Promise<BenchServer> {
  const dir = mkdtempSync(join(tmpdir(), "kbts-bench-server-"));
  const secret = randomBytes(32).toString("hex");
  const secretFile = join(dir, "jwt.secret");
  writeFileSync(secretFile, secret, { mode: 0o600 });
  const token = await new SignJWT({ scope: SCOPES.join(" ") })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("bench")
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime("12h")
    .sign(Buffer.from(secret));
  const raw = {
    server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" }, processes },
    data: { database: { source: url, migrate: "up" } },
    kms: { root_key: rootKey.toString("base64") },
    auth: { enabled: true, jwt: { audience: AUDIENCE, hs256_secret_file: secretFile } },
    log: { level: "info", format: "json", request_sample: requestSample },
  };
  const file = join(dir, "config.yaml");
  // YAML reads JSON.
  writeFileSync(file, JSON.stringify(raw));
  const env = { ...process.env, ...startEnv };
  delete env.DATABASE_URL;
  delete env.KMS_ROOT_KEY;
  // Its log goes to a file, as to a collector: a pipe read here would take
  // CPU from the server and the load generator on a small machine.
  const logFile = join(dir, "server.log");
  const log = openSync(logFile, "a");
  const child = spawn(process.execPath, [...nodeFlags, "dist/cmd/server/main.js", "-conf", file], {
    env,
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  const ports = await new Promise<{ grpc: number; http: number }>((resolve, reject) => {
    const ready = processes > 1 ? '"msg":"all processes listening' : '"msg":"listening';
    const head = () => readFileSync(logFile, "utf8").slice(0, 100_000);
    const poll = setInterval(() => {
      const line = head()
        .split("\n")
        .find((l) => l.includes(ready));
      if (!line) return;
      clearInterval(poll);
      resolve(JSON.parse(line) as { grpc: number; http: number });
    }, 50);
    child.once("exit", (code) => {
      clearInterval(poll);
      reject(new Error(`the server exited (${code}):\n${head()}`));
    });
  });
  return {
    grpcPort: ports.grpc,
    httpPort: ports.http,
    pid: child.pid!,
    token,
    conf: parseConfig(raw, "bench"),
    processes,
    async stop() {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
