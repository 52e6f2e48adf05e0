import { execFile, type ExecFileException } from "node:child_process";
import type pg from "pg";

// pg_dump --schema-only of the target, run beside the event loop (a SIGINT
// is heard while it runs), bounded in time, and never with a password in its
// arguments: arguments are visible to every user of the host in the process
// list, the environment is not.

/** A schema dump that takes longer than this is a stuck one (a lock it waits on). */
export const DUMP_TIMEOUT_MS = 10 * 60_000;

/** `pg_dump --version` answers at once, or this pg_dump is not usable. */
const VERSION_TIMEOUT_MS = 10_000;

/** What pg_dump is started with: its arguments and environment. */
export interface DumpCommand {
  args: string[];
  env: NodeJS.ProcessEnv;
}

/**
 * pg_dump's arguments and environment for `url`: the URL goes in the
 * arguments without its password (userinfo or `?password=`), the password
 * in PGPASSWORD. libpq reads a `password` parameter after the userinfo, so
 * it wins, as it would on pg_dump's command line.
 */
export function dumpCommand(url: string, lockWaitMs: number, env: NodeJS.ProcessEnv): DumpCommand {
  const stripped = new URL(url);
  // The query string is cut by hand: re-serialising it through
  // URLSearchParams would turn `%20` into `+`, which libpq reads as a plus.
  const params = stripped.search.replace(/^\?/, "").split("&");
  const given = params.filter((p) => p.startsWith("password=")).at(-1);
  const password =
    given !== undefined
      ? decodeURIComponent(given.slice("password=".length))
      : stripped.password
        ? decodeURIComponent(stripped.password)
        : "";
  stripped.password = "";
  const kept = params.filter((p) => p !== "" && !p.startsWith("password="));
  stripped.search = kept.length ? `?${kept.join("&")}` : "";
  const args = [
    "--schema-only",
    // pg_dump holds ACCESS SHARE on every table it reaches until it ends:
    // it must not queue (and make traffic queue) behind a waiting lock.
    `--lock-wait-timeout=${Math.max(0, Math.floor(lockWaitMs))}`,
    "--no-owner",
    "--no-privileges",
    "--no-subscriptions",
    "--no-publications",
    `--dbname=${stripped.href}`,
  ];
  return { args, env: password ? { ...env, PGPASSWORD: password } : env };
}

/**
 * The target's schema as SQL, or why pg_dump (`$PG_DUMP`, else the one on
 * PATH) cannot give it: not found, older than the server, failed, or not
 * done within DUMP_TIMEOUT_MS (then killed).
 */
export async function dumpSchema(
  url: string,
  target: pg.Client,
  lockWaitMs: number,
): Promise<{ sql: string } | { why: string }> {
  const pgDump = process.env.PG_DUMP || "pg_dump";
  const version = await run(pgDump, ["--version"], process.env, VERSION_TIMEOUT_MS);
  if (version.failed) return { why: `${pgDump} not found` };
  const major = Number(/(\d+)(?:\.\d+)?/.exec(version.stdout)?.[1] ?? 0);
  const { rows } = await target.query<{ v: number }>(
    "SELECT current_setting('server_version_num')::int AS v",
  );
  const server = Math.floor(rows[0]!.v / 10000);
  if (major < server)
    return { why: `${pgDump} ${major} cannot dump a PostgreSQL ${server} server` };
  const { args, env } = dumpCommand(url, lockWaitMs, process.env);
  const dump = await run(pgDump, args, env, DUMP_TIMEOUT_MS);
  if (dump.timedOut)
    return { why: `${pgDump} did not finish within ${DUMP_TIMEOUT_MS / 60_000} minutes` };
  if (dump.failed)
    return { why: `${pgDump} failed: ${dump.stderr.trim().split("\n")[0] || dump.failed}` };
  // psql meta-commands (\restrict, added by 2025's point releases) are not SQL.
  return { sql: dump.stdout.replace(/^\\(?:restrict|unrestrict)\b.*$/gm, "") };
}

interface Ran {
  stdout: string;
  stderr: string;
  /** Why it did not succeed (not started, killed, a non-zero exit); undefined when it did. */
  failed?: string;
  timedOut: boolean;
}

// Runs `file` to its end, killed after `timeoutMs`, and killed with this
// process if that exits first (a second SIGINT): a dump left running would
// hold its ACCESS SHARE locks for nobody.
function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number) {
  return new Promise<Ran>((resolve) => {
    const child = execFile(
      file,
      args,
      { encoding: "utf8", env, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 256 << 20 },
      (err, stdout, stderr) => {
        process.off("exit", kill);
        const e = err as ExecFileException | null;
        resolve({
          stdout,
          stderr,
          // Not e.message: it repeats the arguments.
          failed: e ? why(e) : undefined,
          // execFile kills on timeout and on maxBuffer; only the former is a timeout.
          timedOut: !!e?.killed && e.code !== "ERR_CHILD_PROCESS_STDIO_MAXBUFFER",
        });
      },
    );
    const kill = () => child.kill("SIGKILL");
    process.on("exit", kill);
  });
}

function why(e: ExecFileException): string {
  if (e.signal) return `killed by ${e.signal}`;
  return typeof e.code === "number" ? `exit status ${e.code}` : (e.code ?? "did not run");
}
