import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { inject } from "vitest";
import { testRootKey } from "./app.js";
import { nodeFlags, startEnv } from "../../bench/lib/start.js";

const root = resolve(import.meta.dirname, "../..");
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

export interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the first output line matching, rejects if the process exits first. */
  waitFor(pattern: RegExp): Promise<string>;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
}

export interface SpawnOptions {
  cwd?: string;
  /** Added to this process's environment; an undefined value removes the variable. */
  env?: NodeJS.ProcessEnv;
}

/**
 * Writes a config for a spawned server: free loopback ports, `databaseUrl`
 * migrated up, the test root key, authentication off, JSON logs. `server`
 * adds keys to the server section, in YAML flow style (`shutdown_timeout: 20s`).
 */
export function writeServerConfig(path: string, databaseUrl: string, server = ""): string {
  const extra = server ? `, ${server}` : "";
  writeFileSync(
    path,
    `server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" }${extra} }
data: { database: { source: "${databaseUrl}", migrate: up } }
kms: { root_key: "${testRootKey}" }
auth: { enabled: false }
log: { level: info, format: json }
`,
  );
  return path;
}

/** Starts the server on a config file, nothing in the environment overriding it; resolves once it listens. */
export async function startServerProcess(conf: string) {
  const server = spawnServer(["-conf", conf], {
    env: { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined },
  });
  const ports = JSON.parse(await server.waitFor(/"msg":"listening/)) as {
    grpc: number;
    http: number;
    tls: string;
  };
  return { server, ports };
}

/** Runs cmd/server/main.ts as its own process, as `npm start` would. */
export function spawnServer(args: string[], opts: SpawnOptions = {}): ServerProcess {
  return spawnScript("cmd/server/main.ts", args, opts);
}

/** The server from its sources as `npm start` runs it: with its Node flags and malloc setting. */
export function spawnServerAsStarted(args: string[], opts: SpawnOptions = {}): ServerProcess {
  const script = resolve(root, "cmd/server/main.ts");
  return spawnNode([...nodeFlags, "--import", tsx, script, ...args], {
    ...opts,
    env: { ...startEnv, ...opts.env },
  });
}

/**
 * Runs cmd/migrate as its own process, from this run's transpiled sources
 * (test/global_setup.ts): real exit codes and output, without tsx's loader.
 */
export function spawnMigrate(args: string[], opts: SpawnOptions = {}): ServerProcess {
  return spawnNode(["--enable-source-maps", inject("migrateScript"), ...args], opts);
}

/** Runs cmd/migrate to completion (see spawnMigrate): its exit code and output. */
export async function runMigrate(args: string[], opts: SpawnOptions = {}) {
  const proc = spawnMigrate(args, opts);
  const stdout = stdoutOf(proc);
  const code = await proc.exited;
  return { code, stdout: stdout(), output: proc.output() };
}

/** What `proc` writes to stdout from now on, as it has come so far. */
export function stdoutOf(proc: ServerProcess): () => string {
  let out = "";
  proc.child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  return () => out;
}

/** Runs one of the project's TypeScript entry points as its own process (through tsx). */
export function spawnScript(
  script: string,
  args: string[],
  opts: SpawnOptions = {},
): ServerProcess {
  return spawnNode(["--import", tsx, resolve(root, script), ...args], opts);
}

/** `npm start -- args` in a checkout, as a user (or a Dockerfile's CMD) runs it. */
export function spawnNpmStart(checkout: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnProcess("npm", ["start", ...(args.length ? ["--", ...args] : [])], {
    cwd: checkout,
    env,
  });
}

/** `node` with these arguments as its own process, output collected. */
function spawnNode(nodeArgs: string[], opts: SpawnOptions): ServerProcess {
  return spawnProcess(process.execPath, nodeArgs, opts);
}

/** Any command as its own process, output collected (stdin stays open until `child.stdin.end()`). */
export function spawnProcess(
  command: string,
  args: string[],
  opts: SpawnOptions = {},
): ServerProcess {
  const env = { ...process.env, ...opts.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const child = spawn(command, args, { cwd: opts.cwd ?? root, env });
  let out = "";
  const waiters: { pattern: RegExp; resolve: (l: string) => void; reject: (e: Error) => void }[] =
    [];
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    for (const w of [...waiters]) {
      const line = out.split("\n").find((l) => w.pattern.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const exited = new Promise<number | string>((res) =>
    child.on("exit", (code, signal) => {
      for (const w of waiters.splice(0))
        w.reject(new Error(`process exited (${code ?? signal}) before ${w.pattern}:\n${out}`));
      res(code ?? signal ?? -1);
    }),
  );
  return {
    child,
    output: () => out,
    exited,
    waitFor: (pattern) =>
      new Promise((resolveLine, reject) => {
        const line = out.split("\n").find((l) => pattern.test(l));
        if (line !== undefined) return resolveLine(line);
        if (child.exitCode !== null) return reject(new Error(`process already exited:\n${out}`));
        waiters.push({ pattern, resolve: resolveLine, reject });
      }),
  };
}

/**
 * What a fresh clone followed by `npm install` holds: the repository's files
 * as they are in this work tree (tracked and new, not ignored), and a copy of
 * its node_modules.
 */
export function copyCheckout(to: string): void {
  const files = execFileSync(
    "git",
    ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    {
      cwd: root,
    },
  )
    .toString()
    .split("\0")
    .filter((f) => f && existsSync(join(root, f)));
  for (const file of files) {
    mkdirSync(dirname(join(to, file)), { recursive: true });
    copyFileSync(join(root, file), join(to, file));
  }
  cpSync(join(root, "node_modules"), join(to, "node_modules"), {
    recursive: true,
    verbatimSymlinks: true,
  });
}

/** Pids of the other processes whose command line mentions `text`, or that run in a directory under it. */
export function processesWith(text: string): string[] {
  const mentions = (p: string) => {
    try {
      return (
        readFileSync(`/proc/${p}/cmdline`, "utf8").includes(text) ||
        readlinkSync(`/proc/${p}/cwd`).startsWith(text)
      );
    } catch {
      return false; // gone meanwhile
    }
  };
  return readdirSync("/proc").filter(
    (p) => /^\d+$/.test(p) && Number(p) !== process.pid && mentions(p),
  );
}

/** Resident memory of a process, in bytes (Linux); `peak`: the most it ever had. */
export async function rssBytes(pid: number, which: "now" | "peak" = "now"): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const field = which === "now" ? /VmRSS:\s+(\d+) kB/ : /VmHWM:\s+(\d+) kB/;
  return Number(field.exec(status)![1]) * 1024;
}
