import { SingleBar } from "cli-progress";
import type { EventSink } from "../../internal/migrate/events.js";

/**
 * `sink` (the --events file, or none) plus, on a terminal, a progress bar on
 * stderr for each batched backfill: rows filled of those counted at its
 * start, rows/s, remaining. Off the terminal the run's log lines say it.
 */
export function withBackfillBar(
  sink: EventSink | undefined,
  terminal: boolean,
): EventSink | undefined {
  if (!terminal) return sink;
  let bar: SingleBar | undefined;
  return (e) => {
    sink?.(e);
    if (e.event === "backfill_progress") {
      const total = e.rows + e.remaining;
      const payload = { rate: e.rowsPerSecond, remaining: e.remaining };
      if (!bar) {
        bar = new SingleBar({
          format: `backfill ${e.name} ${e.table} |{bar}| {value}/{total} rows | {rate} rows/s | {remaining} left`,
          stream: process.stderr,
          hideCursor: true,
        });
        bar.start(total, e.rows, payload);
      } else {
        bar.setTotal(total);
        bar.update(e.rows, payload);
      }
    } else if (e.event === "backfill_finished" || e.event === "run_finished") {
      bar?.stop();
      bar = undefined;
    }
  };
}
