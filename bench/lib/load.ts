import { Worker } from "node:worker_threads";

export interface LoadResult {
  calls: number;
  seconds: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
}

export interface LoadOptions {
  port: number;
  /** gRPC path, e.g. /user.v1.UserService/GetUser */
  path: string;
  /** Serialized request message. */
  request: Uint8Array;
  concurrency: number;
  warmupSeconds: number;
  seconds: number;
  /** `authorization: Bearer …` on every call. */
  token?: string;
}

/**
 * Drives a unary gRPC method from a worker thread (its own event loop, so the
 * client does not steal the server's) and reports throughput and latency.
 * Any status counts as an answer here: callers check on the server's side
 * how many were OK (see compare.ts). The fallback when h2load is missing.
 */
export function runLoad(opts: LoadOptions): Promise<LoadResult> {
  // The worker is TypeScript too: register tsx in it before loading it.
  const entry = new URL("./load_worker.ts", import.meta.url).href;
  const boot = `import("tsx/esm/api").then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  const worker = new Worker(boot, { eval: true, workerData: opts });
  return new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
}
