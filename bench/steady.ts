import { readFileSync } from "node:fs";
import { KmsService } from "../api/kms/v1/kms_pb.js";
import { alternate, type Round } from "./lib/compare.js";
import { startBenchServer } from "./lib/server.js";
import { hashContender, hashRequest, rootKeyB64 } from "./kms.js";

/** Resident memory of a process, in MB, from /proc; NaN where it cannot be read. */
export function rssMB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
  } catch {
    return NaN;
  }
}

export interface Steady {
  /** The server's resident memory before the load and after each round, MB. */
  rss: number[];
  rounds: Round[];
  invalid: string[];
}

/**
 * One server under HashField load at 32 streams (2 connections × 16) for
 * `rounds` rounds of `seconds`: its resident memory after each, which should
 * stay flat once warm (no growth across rounds).
 */
export async function steadyRss(url: string, seconds: number, rounds: number): Promise<Steady> {
  const ours = await startBenchServer(url, Buffer.from(rootKeyB64, "base64"));
  try {
    const rss = [rssMB(ours.pid)];
    const done: Round[] = [];
    const invalid: string[] = [];
    for (let i = 0; i < rounds; i++) {
      const r = await alternate({
        path: `/${KmsService.typeName}/${KmsService.method.hashField.name}`,
        request: hashRequest,
        rounds: 1,
        seconds,
        contenders: [hashContender("ours", ours)],
      });
      done.push(...r.results.get("ours")!.rounds);
      invalid.push(...r.invalid);
      rss.push(rssMB(ours.pid));
    }
    return { rss, rounds: done, invalid };
  } finally {
    await ours.stop();
  }
}
