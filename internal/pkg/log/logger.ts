import { writeSync } from "node:fs";
import { createRequire } from "node:module";
import { pino, type Logger, type LoggerOptions } from "pino";
import type pretty from "pino-pretty";

export type { Logger };

export interface LogOptions {
  level: string;
  /** json, pretty, or auto (pretty when stdout is a terminal). */
  format: string;
  /** Where to write; stdout when absent. */
  destination?: NodeJS.WritableStream;
}

// Keys whose values are secrets or personal data wherever they appear (top
// level or one/two levels down). Code never logs payloads; this is the net
// under that rule.
const sensitiveKeys = [
  "password",
  "passwd",
  "secret",
  "token",
  "authorization",
  "cookie",
  "root_key",
  "rootKey",
  "seed",
  "salt",
  "key",
  "plaintext",
  "email",
  "phone",
  "name",
  "source",
  "databaseUrl",
  "url",
];

const redactPaths = sensitiveKeys.flatMap((k) => [k, `*.${k}`]);

// pino's isoTime, made once per millisecond rather than once per line (a
// Date and its ISO string cost a request log line about a fifth of itself).
let lastMs = Number.NaN;
let lastTime = "";
function isoTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

/** The process logger: structured JSON, pretty on a terminal when asked. */
export function createLogger(options: LogOptions): Logger {
  const settings: LoggerOptions = {
    level: options.level,
    base: { service: "kratos-boilerplate-ts" },
    redact: { paths: redactPaths, censor: "[REDACTED]" },
    timestamp: isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  const out = options.destination ?? process.stdout;
  const usePretty =
    options.format === "pretty" ||
    (options.format === "auto" && (out as NodeJS.WriteStream).isTTY === true);
  if (usePretty) {
    // Loaded only for a terminal: a process that logs JSON (the migrator,
    // the server in production) starts about 30 ms of CPU sooner.
    const prettyStream = createRequire(import.meta.url)("pino-pretty") as typeof pretty;
    return pino(settings, prettyStream({ destination: out, sync: true }));
  }
  if (out !== process.stdout) return pino(settings, out);
  // minLength 1: sonic-boom's flush(cb) then waits for a write in flight
  // (at 0 it calls back at once); every line is longer, so none waits.
  const sonic = pino.destination({ fd: 1, sync: false, minLength: 1, maxWrite: PIPE_BUF });
  return pino(settings, gathered(sonic, 1));
}

// Several processes sharing stdout (server.processes) do not interleave
// within a line when each write holds whole lines and at most this many bytes.
const PIPE_BUF = 4096;

/** What the gatherer writes to: pino's destination (sonic-boom). */
export interface LineSink {
  write(chunk: string): unknown;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

// Writes out what each gatherer holds when the process exits, synchronously
// and after what its destination holds (an asynchronous write begun here
// would land after pino's own exit hook has written what followed it).
const gatherers = new Set<() => void>();
process.on("exit", () => {
  for (const flushSync of gatherers) flushSync();
});

/** How long a line may wait to be written with those that follow it. */
const GATHER_MS = 10;

/**
 * Asynchronous writes to stdout, gathered: the lines logged within
 * GATHER_MS of the first go to `sonic` together, in chunks of whole lines of
 * at most PIPE_BUF bytes (unless one line is longer), each one write. An
 * asynchronous write costs about 20 µs of CPU however little it holds: one
 * per line, or even per event-loop turn, cost a request more than making its
 * line.
 */
export function gathered(sonic: LineSink, fd: number) {
  const chunks: string[] = [];
  let chunk = "";
  let bytes = 0;
  let due = false;
  const take = () => {
    due = false;
    if (chunk !== "") chunks.push(chunk);
    chunk = "";
    bytes = 0;
    return chunks.splice(0);
  };
  const handOver = () => {
    for (const c of take()) sonic.write(c);
  };
  const flushSync = () => {
    const pending = take();
    try {
      sonic.flushSync();
      for (const c of pending) writeSync(fd, c);
    } catch {
      // Not open yet, or closed: nowhere to write.
    }
  };
  gatherers.add(flushSync);
  return {
    write(line: string) {
      const n = Buffer.byteLength(line);
      if (bytes > 0 && bytes + n > PIPE_BUF) {
        chunks.push(chunk);
        chunk = "";
        bytes = 0;
      }
      chunk += line;
      bytes += n;
      if (due) return;
      due = true;
      setTimeout(handOver, GATHER_MS);
    },
    /** Calls back once every line so far is written (sonic waits for its write in flight). */
    flush(cb?: (err?: Error) => void) {
      handOver();
      sonic.flush(cb);
    },
    flushSync,
  };
}
