import { parentPort, workerData } from "node:worker_threads";
import * as grpc from "@grpc/grpc-js";
import type { LoadOptions, LoadResult } from "./load.js";

const opts = workerData as LoadOptions;
const client = new grpc.Client(`127.0.0.1:${opts.port}`, grpc.credentials.createInsecure());
const identity = (b: Buffer) => b;
const request = Buffer.from(opts.request);
const metadata = new grpc.Metadata();
if (opts.token) metadata.set("authorization", `Bearer ${opts.token}`);

function call(): Promise<void> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(opts.path, identity, identity, request, metadata, () => resolve());
  });
}

async function drive(untilMs: number, latencies: number[] | undefined): Promise<number> {
  let calls = 0;
  await Promise.all(
    Array.from({ length: opts.concurrency }, async () => {
      while (Date.now() < untilMs) {
        const started = performance.now();
        await call();
        latencies?.push(performance.now() - started);
        calls++;
      }
    }),
  );
  return calls;
}

await drive(Date.now() + opts.warmupSeconds * 1000, undefined);
const latencies: number[] = [];
const started = performance.now();
const calls = await drive(Date.now() + opts.seconds * 1000, latencies);
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const at = (q: number) =>
  latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
const result: LoadResult = {
  calls,
  seconds,
  perSecond: calls / seconds,
  p50ms: at(0.5),
  p99ms: at(0.99),
};
client.close();
parentPort!.postMessage(result);
