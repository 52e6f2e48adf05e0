import { request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { cpuSeconds } from "./cpu.js";
import { h2load, h2loadAvailable } from "./h2load.js";
import { runLoad, type LoadResult } from "./load.js";
import { median } from "./stats.js";

// Servers measured against each other in the same run: rounds alternate
// between them (so a noisy moment of the machine does not land on one
// side), and each round counts only the calls the server itself answered
// with grpc-status 0. Each server runs in a process of its own, whose CPU
// time over the round, divided by those calls, is its CPU per call.

export interface Contender {
  name: string;
  port: number;
  /** The server's process (its descendants counted with it), for its CPU time. */
  pid: number;
  token?: string;
  /** Calls answered so far, OK and not, as the server counts them. */
  answered(): Promise<Answered>;
}

/** One round of a contender: the load's figures and the server's CPU. */
export interface Round extends LoadResult {
  /** Which round it was (from 1): rounds left out leave gaps. */
  round: number;
  /** Server CPU (user + system) in µs per call answered OK; NaN where it cannot be read. */
  cpuUsPerCall: number;
}

/** What a round leaves the server to finish (log writes, closing connections) before its CPU is read. */
const SETTLE_MS = 200;

export interface Answered {
  ok: number;
  failed: number;
}

export interface Comparison {
  generator: string;
  /** Each contender's rounds, and their medians. */
  results: Map<
    string,
    { rounds: Round[]; perSecond: number; p50ms: number; p99ms: number; cpuUsPerCall: number }
  >;
  /** Rounds left out of the medians: the server did not answer every call OK. */
  invalid: string[];
}

/** `rounds` alternating rounds of each contender on `path`, 2 connections × 16 streams. */
export async function alternate(opts: {
  path: string;
  request: Uint8Array;
  contenders: Contender[];
  rounds: number;
  seconds: number;
}): Promise<Comparison> {
  const external = h2loadAvailable();
  const generator = external
    ? "h2load (nghttp2-client), its own process, 2 connections x 16 streams"
    : "h2load not installed (apt-get install nghttp2-client): grpc-js client in a worker thread of this process, concurrency 32 (it is the limit: ratios say little)";
  const rounds = new Map<string, Round[]>(opts.contenders.map((c) => [c.name, []]));
  const invalid: string[] = [];
  const drive = (c: Contender, seconds: number) =>
    h2load({
      port: c.port,
      path: opts.path,
      request: opts.request,
      token: c.token,
      connections: 2,
      streams: 16,
      seconds,
    });
  for (let round = 0; round < opts.rounds; round++) {
    for (const c of opts.contenders) {
      // Warmed up apart, so that the server's counts cover exactly the calls measured.
      if (external) await drive(c, 1);
      const before = await c.answered();
      const cpuBefore = cpuSeconds(c.pid);
      const r = external
        ? await drive(c, opts.seconds)
        : await runLoad({
            port: c.port,
            path: opts.path,
            request: opts.request,
            concurrency: 32,
            warmupSeconds: 1,
            seconds: opts.seconds,
            token: c.token,
          });
      await sleep(SETTLE_MS);
      const cpuAfter = cpuSeconds(c.pid);
      const after = await c.answered();
      const ok = after.ok - before.ok;
      const failed = after.failed - before.failed;
      // Every call the server saw must be OK, and every answer counted one of
      // them (the in-process client warms up inside its run: its counts cover more).
      if (failed > 0 || ok < r.calls) {
        invalid.push(
          `${c.name}, round ${round + 1}: ${r.calls} answers counted; the server answered ${ok} OK and ${failed} with an error (left out)`,
        );
        continue;
      }
      const cpu = cpuBefore === undefined || cpuAfter === undefined ? NaN : cpuAfter - cpuBefore;
      rounds.get(c.name)!.push({ ...r, round: round + 1, cpuUsPerCall: (cpu * 1e6) / ok });
    }
  }
  const results: Comparison["results"] = new Map();
  for (const [name, rs] of rounds) {
    results.set(name, {
      rounds: rs,
      perSecond: median(rs.map((r) => r.perSecond)),
      p50ms: median(rs.map((r) => r.p50ms)),
      p99ms: median(rs.map((r) => r.p99ms)),
      cpuUsPerCall: median(rs.map((r) => r.cpuUsPerCall)),
    });
  }
  return { generator, results, invalid };
}

/**
 * The gRPC calls a service answered for `method`, OK and not, from its
 * /metrics; with several processes, each scrape (on a connection of its own)
 * reaches one of them, so it scrapes until it has heard from all.
 */
export async function answeredFromMetrics(
  httpPort: number,
  service: string,
  method: string,
  token?: string,
  processes = 1,
): Promise<Answered> {
  const byWorker = new Map<string, Answered>();
  for (let i = 0; byWorker.size < processes; i++) {
    if (i === 50)
      throw new Error(`/metrics: heard from ${byWorker.size} of ${processes} processes`);
    const text = await scrape(httpPort, token);
    byWorker.set(/worker="(\d+)"/.exec(text)?.[1] ?? "", count(text, service, method));
  }
  const total = { ok: 0, failed: 0 };
  for (const c of byWorker.values()) {
    total.ok += c.ok;
    total.failed += c.failed;
  }
  return total;
}

function scrape(port: number, token: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: "/metrics",
        agent: false,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () =>
          res.statusCode === 200
            ? resolve(body)
            : reject(new Error(`/metrics answered ${res.statusCode}`)),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function count(text: string, service: string, method: string): Answered {
  const counted = { ok: 0, failed: 0 };
  for (const l of text.split("\n")) {
    if (
      !l.startsWith("rpc_server_duration_seconds_count{") ||
      !l.includes(`service="${service}"`) ||
      !l.includes(`method="${method}"`) ||
      !l.includes('transport="grpc"')
    )
      continue;
    const n = Number(l.split(" ").at(-1));
    if (l.includes('code="OK"')) counted.ok += n;
    else counted.failed += n;
  }
  return counted;
}
