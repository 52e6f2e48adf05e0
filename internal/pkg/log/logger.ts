import { fstatSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { isatty } from "node:tty";
import { pino, type Logger, type LoggerOptions } from "pino";
import type pretty from "pino-pretty";

export type { Logger };

export interface LogOptions {
  level: string;
  /** json, pretty, or auto (pretty when stdout is a terminal). */
  format: string;
  /** Where to write; stdout when absent. */
  destination?: NodeJS.WritableStream;
  /**
   * A file descriptor to write to instead of `destination`, JSON lines the
   * way stdout is written (gathered, asynchronous): what the chain's
   * benchmark uses to time the production path. The logger writes to it
   * until the process exits (what it still holds then, synchronously): close
   * it only once flushed and done logging.
   */
  fd?: number;
  /**
   * Other processes write to the same output (server.processes > 1): each
   * write then holds at most PIPE_BUF bytes (see `writeLimit`).
   */
  shared?: boolean;
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
  const terminal =
    options.fd === undefined ? (out as NodeJS.WriteStream).isTTY === true : isatty(options.fd);
  if (options.format === "pretty" || (options.format === "auto" && terminal)) {
    // Loaded only for a terminal: a process that logs JSON (the migrator,
    // the server in production) starts about 30 ms of CPU sooner.
    const prettyStream = createRequire(import.meta.url)("pino-pretty") as typeof pretty;
    return pino(settings, prettyStream({ destination: options.fd ?? out, sync: true }));
  }
  if (options.fd === undefined && out !== process.stdout) return pino(settings, out);
  const fd = options.fd ?? 1;
  const maxWrite = writeLimit(fd, options.shared ?? false);
  // minLength 1: sonic-boom's flush(cb) then waits for a write in flight
  // (at 0 it calls back at once); every line is longer, so none waits.
  const sonic = pino.destination({
    fd,
    sync: false,
    minLength: 1,
    maxWrite,
    contentMode: "buffer",
  });
  // In buffer mode sonic-boom takes Buffers (its types know only strings).
  // Known fault there (4.2.1): after a failed write other than EAGAIN/EPIPE
  // its flushSync keeps stale lengths and can cut lines short; pino rethrows
  // such an error, so it is met only on the way out of a crashing process.
  return pino(settings, gathered(sonic as unknown as LineSink, fd, maxWrite));
}

/**
 * Writes info lines of one fixed shape through `logger`'s destination, as
 * `logger.child(bindings).info({...}, msg)` would write them (its level,
 * time and bindings, rendered by pino once), with the members in between
 * rendered by the caller: JSON members, each after a comma. For the request
 * log, whose fields are fixed and carry no secret: pino's generic path (every
 * key looked at, every value escaped, the hooks) cost a line about three
 * times this. The bindings are not redacted.
 */
export function fixedInfoLines(
  logger: Logger,
  bindings: Record<string, string>,
  msg: string,
): (members: string) => void {
  const child = logger.child(bindings, { redact: [] });
  const internals = child as unknown as Record<symbol, unknown>;
  const { lsCacheSym, timeSym, chindingsSym, endSym, messageKeySym, streamSym } = pino.symbols;
  const head = (internals[lsCacheSym] as Record<number, string>)[child.levels.values.info!]!;
  const time = internals[timeSym] as () => string;
  const chindings = internals[chindingsSym] as string;
  const tail = `,${JSON.stringify(internals[messageKeySym])}:${JSON.stringify(msg)}${internals[endSym] as string}`;
  const stream = internals[streamSym] as { write(line: string): unknown };
  return (members) => stream.write(`${head}${time()}${chindings}${members}${tail}`);
}

// Several processes sharing stdout (server.processes) do not interleave
// within a line when each write holds whole lines and at most this many bytes.
const PIPE_BUF = 4096;

/**
 * The most one write of gathered lines holds. A regular file written by
 * this process alone takes a whole slab at once (one write per GATHER_MS
 * rather than one per twenty lines or so). Anything else, a pipe above all,
 * gets whole lines of at most PIPE_BUF: such a write goes out whole or not
 * at all, where a longer one to a pipe whose reader is behind may go out in
 * part, and at exit sonic-boom's flushSync writes what follows before the
 * rest (a line cut and joined to the next), as a write still in flight in
 * the thread pool may interleave with the exit's own. Processes sharing the
 * output keep to PIPE_BUF whatever it is.
 */
export function writeLimit(fd: number, shared: boolean): number {
  if (shared) return PIPE_BUF;
  try {
    return fstatSync(fd).isFile() ? SLAB_BYTES : PIPE_BUF;
  } catch {
    return PIPE_BUF;
  }
}

/** What the gatherer writes to: pino's destination (sonic-boom). */
export interface LineSink {
  write(chunk: Buffer): unknown;
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

// Lines are copied as they come into slabs of this size, as UTF-8.
const SLAB_BYTES = 64 * 1024;

// A file can take less than it is given (a full disk): the rest follows.
function writeWhole(fd: number, bytes: Buffer): void {
  for (let left = bytes; left.length > 0;) {
    const n = writeSync(fd, left);
    if (n <= 0) return;
    left = left.subarray(n);
  }
}

/**
 * Asynchronous writes to stdout, gathered: the lines logged within
 * GATHER_MS of the first go to `sonic` together, in chunks of whole lines of
 * at most `chunkBytes` (unless one line is longer), each one write. An
 * asynchronous write costs about 20 µs of CPU however little it holds: one
 * per line, or even per event-loop turn, cost a request more than making its
 * line. Each line is encoded at once into a slab, outside the JavaScript
 * heap: under load a line held as a string until its write often outlived a
 * young-generation collection, and the strings promoted cost full ones.
 */
export function gathered(sonic: LineSink, fd: number, chunkBytes = PIPE_BUF) {
  let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  // The slab's bytes filled, and where the chunk being gathered begins.
  let used = 0;
  let start = 0;
  // Whole chunks, in order, waiting to be handed over.
  const chunks: Buffer[] = [];
  let due = false;
  const cut = () => {
    if (used > start) chunks.push(slab.subarray(start, used));
    start = used;
  };
  const take = () => {
    due = false;
    cut();
    return chunks.splice(0);
  };
  const handOver = () => {
    for (const c of take()) sonic.write(c);
  };
  const flushSync = () => {
    const pending = take();
    try {
      sonic.flushSync();
      for (const c of pending) writeWhole(fd, c);
    } catch {
      // Not open yet, or closed: nowhere to write.
    }
  };
  gatherers.add(flushSync);
  return {
    write(line: string) {
      // A UTF-16 code unit takes at most three bytes of UTF-8. A slab handed
      // over in part is never written to again there: a new one is taken.
      if (line.length * 3 > SLAB_BYTES - used) {
        cut();
        if (line.length * 3 > SLAB_BYTES) {
          chunks.push(Buffer.from(line));
        } else {
          slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
          used = 0;
          start = 0;
        }
      }
      if (line.length * 3 <= SLAB_BYTES) {
        const n = slab.write(line, used);
        if (used > start && used + n - start > chunkBytes) cut();
        used += n;
      }
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
