import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, mkdirSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Logger } from "../log/logger.js";
import type { Binaries, RunAs } from "./binaries.js";

// PostgreSQL's own programs run as child processes: initdb, then the postmaster.

// Only what PostgreSQL needs of our environment: never the root key
// (KMS_ROOT_KEY) or any other secret of the service, which a superuser could
// read back (COPY ... FROM PROGRAM 'env', /proc/<pid>/environ). Messages in
// English whatever the locale (start-up is recognised by PostgreSQL's own
// "ready" line); the cluster's collation follows the locale.
const PASSED = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "LC_COLLATE", "TZ", "TMPDIR"];
export const postgresEnvironment = (from: NodeJS.ProcessEnv = process.env) => ({
  ...Object.fromEntries(PASSED.flatMap((k) => (from[k] ? [[k, from[k]]] : []))),
  LC_MESSAGES: "C",
});

/** Creates the cluster in `dataDir` with a scram-sha-256 superuser `postgres`. */
export async function initdb(
  bins: Binaries,
  dataDir: string,
  password: string,
  user: RunAs | undefined,
): Promise<void> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Beside the cluster, readable by its owner only, gone once initdb read it.
  const pwfile = join(dirname(dataDir), `.initdb-${randomBytes(6).toString("hex")}`);
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  try {
    if (user) {
      chownSync(dataDir, user.uid, user.gid);
      chownSync(pwfile, user.uid, user.gid);
    }
    const args = [
      `--pgdata=${dataDir}`,
      "--auth=scram-sha-256",
      "--username=postgres",
      `--pwfile=${pwfile}`,
      "--encoding=UTF8",
      "--lc-messages=C",
      "--no-instructions",
    ];
    const child = spawn(bins.initdb, args, {
      ...user,
      env: postgresEnvironment(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output = collect(child);
    const code = await exited(child);
    if (code !== 0)
      throw new Error(`embedded PostgreSQL: ${bins.initdb} failed (${code}): ${output.tail()}`);
  } finally {
    unlinkSync(pwfile);
  }
}

export interface Postmaster {
  /** Fast shutdown (SIGINT), waiting for the server to exit. */
  stop(): Promise<void>;
}

/**
 * Starts `postgres` on `dataDir`, listening on 127.0.0.1:`port` only (no Unix
 * socket); resolves once it accepts connections. It runs in its own process
 * group, so a Ctrl-C in a terminal reaches our server, which drains and then
 * stops the database, rather than the database first.
 */
export async function startPostmaster(
  bins: Binaries,
  dataDir: string,
  port: number,
  user: RunAs | undefined,
  log: Logger,
): Promise<Postmaster> {
  const args = ["-D", dataDir, "-p", String(port)];
  for (const setting of [
    "listen_addresses=127.0.0.1",
    "unix_socket_directories=",
    "lc_messages=C",
  ]) {
    args.push("-c", setting);
  }
  const child = spawn(bins.postgres, args, {
    ...user,
    env: postgresEnvironment(),
    detached: true,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const output = collect(child, (line) => log.debug({ postgres: line }, "embedded postgres"));
  const exit = exited(child);
  let stopping = false;
  const ready = await Promise.race([
    output.seen(/database system is ready to accept connections/).then(() => true),
    exit.then(() => false),
  ]);
  if (!ready) {
    const code = await exit;
    // A spawn that failed (EACCES, ENOENT) has no output: name the binary.
    const reason =
      typeof code === "string" && /^E[A-Z]+$/.test(code)
        ? `cannot run ${bins.postgres} (${code})`
        : output.tail();
    const hint = /lock file/.test(reason)
      ? ` (another server on it? see ${join(dataDir, "postmaster.pid")})`
      : "";
    throw new Error(`embedded PostgreSQL in ${dataDir} did not start: ${reason}${hint}`);
  }
  void exit.then((code) => {
    if (!stopping) log.error({ code }, `embedded PostgreSQL exited unexpectedly: ${output.tail()}`);
  });
  return {
    async stop() {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
      await exit;
    },
  };
}

// A spawn that fails (EACCES, ENOENT) reports an 'error' event, then no exit:
// both become the exit value, so a caller never meets an unhandled event.
function exited(child: ChildProcess): Promise<number | string> {
  return new Promise((resolve) => {
    child.once("error", (err) => resolve((err as NodeJS.ErrnoException).code ?? err.message));
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "exit"));
  });
}

/** Consumes a child's stderr line by line (an unread pipe would block it), keeping the last lines. */
function collect(child: ChildProcess, onLine: (line: string) => void = () => undefined) {
  const last: string[] = [];
  const waiting: { pattern: RegExp; resolve: () => void }[] = [];
  let partial = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines.map((l) => l.trim()).filter(Boolean)) {
      onLine(line);
      last.push(line);
      if (last.length > 5) last.shift();
      for (const w of waiting.filter((w) => w.pattern.test(line))) w.resolve();
    }
  });
  return {
    tail: () => (last.length ? last.join(" | ") : "no output"),
    seen: (pattern: RegExp) => new Promise<void>((resolve) => waiting.push({ pattern, resolve })),
  };
}
