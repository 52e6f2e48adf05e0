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
  // Asynchronous writes to stdout: a line waits only while the previous write
  // is in flight, and lines that pile up meanwhile go out in one write (one
  // syscall per line cost the request log as much as the line itself). Pino
  // flushes what is left when the process exits. Each write holds whole lines
  // and at most PIPE_BUF (4 KiB) bytes (unless one line is longer), so several
  // processes sharing stdout (server.processes) do not interleave within a line.
  return pino(
    settings,
    out === process.stdout ? pino.destination({ sync: false, minLength: 0, maxWrite: 4096 }) : out,
  );
}
