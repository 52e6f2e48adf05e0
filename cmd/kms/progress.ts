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
    format: `${opts.label} |{bar}| {percentage}% | {value}/{total} rows | {rate} rows/s | {failed} failed`,
    stream: process.stderr,
    noTTYOutput: !opts.json,
    notTTYSchedule: 10_000,
    hideCursor: true,
  });
  const counts = (s: S) => ({
    done: Number(s.rowsDone),
    total: Number(s.rowsDone + s.rowsRemaining),
    payload: { rate: s.rowsPerSecond.toFixed(0), failed: String(s.rowsFailed) },
  });
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
