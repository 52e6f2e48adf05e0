import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

// The CPU a server spends, read from outside it (Linux's /proc), so that
// every server is measured the same way whether it is ours, a reference or
// a cluster of processes, and nothing runs inside it to ask.

const ticksPerSecond = (() => {
  const out = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  const n = Number(out.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

/** Whether a process's CPU time can be read here. */
export const cpuReadable = (): boolean => ownTicks(process.pid) !== undefined;

/**
 * User + system CPU seconds of `pid` and of its live descendants (a
 * cluster's workers), all threads included; undefined where /proc is not
 * there or the process is gone.
 */
export function cpuSeconds(pid: number): number | undefined {
  const ticks = treeTicks(pid);
  return ticks === undefined ? undefined : ticks / ticksPerSecond;
}

function treeTicks(pid: number): number | undefined {
  const own = ownTicks(pid);
  if (own === undefined) return undefined;
  let total = own;
  for (const child of children(pid)) total += treeTicks(child) ?? 0;
  return total;
}

function ownTicks(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces; utime
  // and stime are fields 14 and 15, the 12th and 13th after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

function children(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").split(" ");
  } catch {
    return [];
  }
  return tasks.filter(Boolean).map(Number);
}
