import { SingleBar } from "cli-progress";

// Following a background job from the command line: a progress bar on
// stderr (a line every 10 s without a terminal), the result on stdout.

/** What a job's status says of its progress (both jobs' status messages have these). */
export interface Progress {
  rowsDone: bigint;
  rowsRemaining: bigint;
  rowsPerSecond: number;
  rowsFailed: bigint;
}

/** Polls `poll` every 2 s while `running`, drawing `label`'s progress; the last status. */
export async function follow<S extends Progress>(opts: {
  label: string;
  first: S;
  poll: () => Promise<S>;
  running: (s: S) => boolean;
  json: boolean;
}): Promise<S> {
  const bar = new SingleBar({
    format: `${opts.label} |{bar}| {percentage}% | {value}/{total} rows{growing} | {rate} rows/s | {failed} failed`,
    stream: process.stderr,
    noTTYOutput: !opts.json,
    notTTYSchedule: 10_000,
    hideCursor: true,
  });
  const counts = barCounts();
  let status = opts.first;
  const c0 = counts(status);
  if (!opts.json) bar.start(c0.total, c0.done, c0.payload);
  while (opts.running(status)) {
    // Each status counts the rows left (a scan on a large table): asked
    // often, it would slow the job it watches.
    await new Promise((r) => setTimeout(r, 2000));
    status = await opts.poll();
    const c = counts(status);
    if (!opts.json) {
      bar.setTotal(c.total);
      bar.update(c.done, c.payload);
    }
  }
  if (!opts.json) bar.stop();
  return status;
}

/**
 * The bar's figures from each status. The total is what the job has done
 * plus what it still counts to do, and that can move while it runs (rows
 * written meanwhile, a key rotated into a new pass): from the first time it
 * differs from the total the bar started with, the bar says it is growing
 * rather than let a total jump unexplained.
 */
export function barCounts(): (s: Progress) => {
  done: number;
  total: number;
  payload: { rate: string; failed: string; growing: string };
} {
  let first: number | undefined;
  let moved = false;
  return (s) => {
    const total = Number(s.rowsDone + s.rowsRemaining);
    first ??= total;
    moved ||= total !== first;
    return {
      done: Number(s.rowsDone),
      total,
      payload: {
        rate: s.rowsPerSecond.toFixed(0),
        failed: String(s.rowsFailed),
        growing: moved ? ` (total growing, was ${first})` : "",
      },
    };
  };
}

/** Prints a status: one JSON line, or aligned `key value` lines; undefined values left out. */
export function printView(view: Record<string, unknown>, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(view)}\n`);
    return;
  }
  const lines = Object.entries(view)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k.padEnd(14)} ${String(v)}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}
