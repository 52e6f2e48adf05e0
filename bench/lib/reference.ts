import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Answered } from "./compare.js";
import { nodeFlags, startEnv } from "./start.js";

/**
 * The servers ours is measured against, each in a process of its own:
 * - bare: @grpc/grpc-js answering HashField with a fixed reply (no work);
 * - grpc-js: @grpc/grpc-js + protobuf-es doing HashField's work, nothing else;
 * - http2: node:http2's stream API + protobuf-es, the same work (h2_unary.ts);
 * - users: @grpc/grpc-js running GetUser's and LookupUser's query (bare_users.ts).
 */
export type ReferenceKind = "bare" | "grpc-js" | "http2" | "users";

export interface ReferenceServer {
  port: number;
  pid: number;
  /** Calls it answered so far, OK and not. */
  answered(): Promise<Answered>;
  stop(): Promise<void>;
}

const entry = fileURLToPath(new URL("./reference_main.ts", import.meta.url));

/**
 * Starts a reference with the same Node and flags as the service (and tsx,
 * which only transpiles at load), for `users` on the database at `url`.
 */
export async function startReference(kind: ReferenceKind, url?: string): Promise<ReferenceServer> {
  const env = { ...process.env, ...startEnv };
  if (url) env.BENCH_DATABASE_URL = url;
  const child = spawn(process.execPath, [...nodeFlags, "--import", "tsx", entry, kind], {
    env,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<number | null>((r) => child.once("exit", r));
  const gone = exited.then((code) => new Error(`reference ${kind} exited (${code})`));
  // Replies come in the order asked.
  const waiting: ((a: Answered) => void)[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m: { port: number }) => resolve(m.port));
    void gone.then(reject);
  });
  child.on("message", (m: Answered) => waiting.shift()?.(m));
  return {
    port,
    pid: child.pid!,
    answered: () =>
      new Promise<Answered>((resolve, reject) => {
        waiting.push(resolve);
        child.send("answered");
        void gone.then(reject);
      }),
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
