import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LoadResult } from "./load.js";

// gRPC load from outside the process: h2load (Debian's nghttp2-client)
// drives unary calls over HTTP/2 from its own process, so the figures are
// the server's and not a load generator's sharing its event loop.

export interface H2loadOptions {
  port: number;
  /** gRPC path, e.g. /kms.v1.KmsService/HashField */
  path: string;
  /** The serialized request message (framed here). */
  request: Uint8Array;
  /** `authorization: Bearer …` on every call. */
  token?: string;
  connections: number;
  /** Concurrent streams per connection. */
  streams: number;
  seconds: number;
}

export interface H2loadResult extends LoadResult {
  /** Calls h2load saw fail at the HTTP/2 level (a gRPC error still answers HTTP 200). */
  failed: number;
}

/** Whether h2load can be run here. */
export const h2loadAvailable = (): boolean =>
  spawnSync("h2load", ["--version"], { stdio: "ignore" }).status === 0;

/**
 * One measurement: h2load with `connections` × `streams` for `seconds`
 * (a warm-up is a measurement of its own, before). Every answer h2load
 * counts is an HTTP/2 response; whether it carried grpc-status 0 the caller
 * checks on the server's side (h2load does not read trailers). Latencies
 * are those of HTTP 200 answers.
 */
export async function h2load(opts: H2loadOptions): Promise<H2loadResult> {
  const dir = mkdtempSync(join(tmpdir(), "kbts-h2load-"));
  try {
    // A gRPC message: uncompressed flag, big-endian length, the bytes.
    const frame = Buffer.alloc(5 + opts.request.length);
    frame.writeUInt32BE(opts.request.length, 1);
    frame.set(opts.request, 5);
    const body = join(dir, "body");
    const log = join(dir, "log");
    writeFileSync(body, frame);
    const headers = ["content-type: application/grpc", "te: trailers"];
    if (opts.token) headers.push(`authorization: Bearer ${opts.token}`);
    const args = [
      ...headers.flatMap((h) => ["-H", h]),
      "-d",
      body,
      "-c",
      String(opts.connections),
      "-m",
      String(opts.streams),
      "-t",
      "1",
      "-D",
      String(opts.seconds),
      "--log-file",
      log,
      `http://127.0.0.1:${opts.port}${opts.path}`,
    ];
    const out = await run("h2load", args);
    const requests =
      /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(out);
    const finished = /finished in ([\d.]+)(m?s)/.exec(out);
    if (!requests || !finished) throw new Error(`h2load: unexpected output:\n${out}`);
    const seconds = Number(finished[1]) / (finished[2] === "ms" ? 1000 : 1);
    const succeeded = Number(requests[4]);
    // Per request: start (µs since epoch), HTTP status, duration (µs).
    const durations = readFileSync(log, "utf8")
      .split("\n")
      .map((l) => l.split("\t"))
      .filter((f) => f[1] === "200")
      .map((f) => Number(f[2]) / 1000)
      .sort((a, b) => a - b);
    const at = (q: number) =>
      durations[Math.min(durations.length - 1, Math.floor(q * durations.length))] ?? NaN;
    return {
      calls: succeeded,
      seconds,
      perSecond: succeeded / seconds,
      p50ms: at(0.5),
      p99ms: at(0.99),
      failed: Number(requests[5]),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(command: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${command} exited ${code}:\n${out}`)),
    );
  });
}
