import { spawn } from "node:child_process";
import type pg from "pg";
import { emit } from "./events.js";
import type { MigratorOptions } from "./options.js";
import type { Step } from "./plan.js";
import { sessionIdleMs } from "./session.js";

// A backup before a run changes anything: the operator's command (pg_dump,
// pgBackRest, a snapshot API), run under the migration lock so that nothing
// else migrates between the backup and the run. It fails closed: a non-zero
// exit, a signal or the time bound applies nothing.

export const BACKUPS_TABLE = "public.migrate_backups";

/** Its stdout beyond this is dropped from the front: only the last line matters. */
const STDOUT_KEEP = 64 * 1024;
const LOCATION_CHARS = 1000;
/** A stopped backup command gets this long after SIGTERM before SIGKILL. */
const KILL_GRACE_MS = 10_000;

/** The backup command failed, was stopped or timed out: exit 1, nothing applied. */
export class BackupFailedError extends Error {
  override name = "BackupFailedError";
  constructor(
    message: string,
    /** Stopped by the run's signal (SIGINT, SIGTERM), not failed on its own. */
    readonly interrupted = false,
  ) {
    super(message);
  }
}

/** A backup taken: where it went (its command's last line on stdout), how long it took. */
export interface Backup {
  location: string | undefined;
  ms: number;
}

/** A backup as recorded, for `status`. */
export interface RecordedBackup {
  location: string | null;
  takenAt: Date;
  steps: string[];
}

/**
 * Runs opts.backupCommand (`sh -c`) with the database URL in DATABASE_URL
 * and the steps about to run in MIGRATE_STEPS, while `client` keeps the
 * migration lock's session alive; records it, with the steps, in
 * migrate_backups. Throws BackupFailedError, having applied nothing.
 */
export async function takeBackup(
  opts: MigratorOptions,
  client: pg.Client,
  steps: Step[],
  signal?: AbortSignal,
): Promise<Backup> {
  const started = performance.now();
  emit(opts, { event: "backup_started" });
  opts.log.info({ steps: steps.length }, "backup: running the backup command");
  // The session that holds the lock would otherwise be ended as idle.
  const keepAlive = setInterval(
    () => void client.query("SELECT 1").catch(() => undefined),
    sessionIdleMs(opts) / 3,
  );
  let outcome: { stdout: string } | { why: string };
  try {
    outcome = await runCommand(
      opts.backupCommand!,
      {
        ...withheld(process.env),
        DATABASE_URL: opts.databaseUrl,
        MIGRATE_STEPS: steps.map(label).join(" "),
      },
      opts.backupTimeoutMs,
      signal,
    );
  } finally {
    clearInterval(keepAlive);
  }
  const ms = Math.round(performance.now() - started);
  if ("why" in outcome) {
    const message = `the backup command ${outcome.why}; nothing was applied`;
    emit(opts, { event: "backup_failed", ms, message });
    throw new BackupFailedError(message, signal?.aborted === true);
  }
  const location = lastLine(outcome.stdout);
  await recordBackup(client, location, ms, steps, opts.operator);
  emit(opts, { event: "backup_finished", ms, location });
  opts.log.info({ location: location ?? null, ms }, "backup: taken");
  return { location, ms };
}

// The service's own secrets (the root keys, the kms CLI's token) are no
// business of a backup: the server's start-up `up` runs it too.
const withheld = (env: NodeJS.ProcessEnv) =>
  Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith("KMS_")));

const label = (s: Step) => (s.direction === "up" ? s.name : `${s.name}:down`);

async function recordBackup(
  client: pg.Client,
  location: string | undefined,
  ms: number,
  steps: Step[],
  operator: string | undefined,
): Promise<void> {
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${BACKUPS_TABLE} (
       id serial PRIMARY KEY,
       taken_at timestamp NOT NULL,
       ms integer NOT NULL,
       location text,
       steps text[] NOT NULL,
       db_user text NOT NULL,
       operator text
     )`,
  );
  await client.query(
    `INSERT INTO ${BACKUPS_TABLE} (taken_at, ms, location, steps, db_user, operator)
     VALUES (now() AT TIME ZONE 'UTC', $1, $2, $3, session_user, $4)`,
    [ms, location ?? null, steps.map(label), operator ?? null],
  );
}

/** Every backup recorded, newest first; none before the table exists. */
export async function readBackups(client: pg.ClientBase): Promise<RecordedBackup[]> {
  const { rows } = await client.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [
    BACKUPS_TABLE,
  ]);
  if (!rows[0]?.ok) return [];
  const backups = await client.query<{ location: string | null; at: Date; steps: string[] }>(
    `SELECT location, taken_at AT TIME ZONE 'UTC' AS at, steps FROM ${BACKUPS_TABLE} ORDER BY id DESC`,
  );
  return backups.rows.map((r) => ({ location: r.location, takenAt: r.at, steps: r.steps }));
}

// The last non-empty line, without control characters, cut: a location, not a log.
function lastLine(stdout: string): string | undefined {
  const line = stdout
    .split("\n")
    .map((l) => l.replace(/\p{Cc}/gu, "").trim())
    .filter((l) => l !== "")
    .at(-1);
  return line === undefined ? undefined : withoutCredentials(line).slice(0, LOCATION_CHARS);
}

// A location is logged, recorded and sent as an event: a URL's user,
// password and query (a presigned URL's signature) stay out of all three.
function withoutCredentials(location: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) return location;
  try {
    const url = new URL(location);
    if (!url.username && !url.password && !url.search) return location;
    url.username = "";
    url.password = "";
    url.search = "";
    return url.toString();
  } catch {
    return location;
  }
}

/**
 * `sh -c command` in its own process group (so a stop reaches pg_dump, not
 * only the shell), stdout kept, stderr passed through to ours.
 */
function runCommand(
  command: string,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ stdout: string } | { why: string }> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve({ why: "was not started: interrupted" });
    const child = spawn("/bin/sh", ["-c", command], {
      env,
      detached: true,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    let stopped: string | undefined;
    const signalGroup = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig);
      } catch {
        // Already gone.
      }
    };
    let killTimer: NodeJS.Timeout | undefined;
    // SIGTERM, then SIGKILL for a command that does not stop.
    const stop = (why: string) => {
      stopped ??= why;
      signalGroup("SIGTERM");
      killTimer ??= setTimeout(() => signalGroup("SIGKILL"), KILL_GRACE_MS).unref();
    };
    const timer = setTimeout(() => stop(`did not finish within ${timeoutMs / 1000} s`), timeoutMs);
    const onAbort = () => stop("was stopped: interrupted");
    signal?.addEventListener("abort", onAbort, { once: true });
    // Our own exit must not leave a backup running behind a released lock.
    const onExit = () => signalGroup("SIGKILL");
    process.once("exit", onExit);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout = (stdout + chunk).slice(-STDOUT_KEEP);
    });
    const done = (result: { stdout: string } | { why: string }) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      signal?.removeEventListener("abort", onAbort);
      process.off("exit", onExit);
      resolve(result);
    };
    child.on("error", (err) => done({ why: `could not be started: ${err.message}` }));
    child.on("close", (code, sig) => {
      if (stopped) done({ why: stopped });
      else if (code === 0) done({ stdout });
      else done({ why: code === null ? `was killed by ${sig}` : `exited with ${code}` });
    });
  });
}
