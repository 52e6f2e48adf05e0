import { openSync, writeSync } from "node:fs";
import type { EventSink } from "../../internal/migrate/events.js";
import { UsageError } from "./options.js";

/**
 * --events FILE|-: one JSON line per event, appended to FILE (created 0600)
 * or written to stdout, each written synchronously as it happens: whatever
 * stops the process, the lines before it are there.
 */
export function eventSink(target: string | undefined, json: boolean): EventSink | undefined {
  if (target === undefined) return undefined;
  if (target.trim() === "") throw new UsageError("--events is empty: give a file, or - for stdout");
  if (target === "-" && json)
    throw new UsageError("--events - and --json both write to stdout: give --events a file");
  let fd: number;
  try {
    fd = target === "-" ? 1 : openSync(target, "a", 0o600);
  } catch (err) {
    throw new UsageError(`--events ${target}: ${(err as Error).message}`);
  }
  return (e) => writeSync(fd, `${JSON.stringify(e)}\n`);
}
