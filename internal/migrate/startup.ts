import type pg from "pg";
import { isDatabaseUnavailable } from "../pkg/dberr/dberr.js";
import { inspect } from "./inspect.js";
import { readFailures, standing } from "./failure_record.js";
import { BackupFailedError } from "./backup.js";
import { StoppedBeforeStartError } from "./lock.js";
import type { MigratorOptions } from "./options.js";
import { stepOutcome } from "./outcome.js";
import { blockersSummary } from "./retry.js";
import { run, type RunReport, type StepFailure } from "./runner.js";
import { readMigrations, type MigrationFile, type MigrationSource } from "./source.js";

/** What the start-up run did, for the server's metrics. */
export interface StartupMigrations {
  /** The migrations applied, each with how long it ran and lost to lock refusals. */
  applied: { name: string; ms: number; lockRetryMs: number }[];
  /** The whole run, lock wait included. */
  ms: number;
  /** How long it waited for the migration lock (another instance migrating). */
  lockWaitMs: number;
  finishedAt: Date;
}

/**
 * What the server does with migrations before serving, per
 * `data.database.migrate`: `up` applies pending ones under the shared lock
 * (never a contract, and none past an unmarked one an older live instance
 * would trip on: plan.ts),
 * `check` refuses to start while any is pending, an applied file changed or
 * an index is INVALID, `verify` also while the schema is not the one the
 * applied files make (replayed into a throwaway database: the role needs
 * CREATEDB), `off` does neither. Resolves with what `up` did (undefined in
 * the other modes).
 *
 * `signal` (SIGTERM during start-up) stops `up` as it stops `migrate up`:
 * the wait for the lock ends, the statement in flight is cancelled, no
 * further step begins; it then rejects with MigrationsStoppedError, whose
 * message says what stands (a step that failed on its own meanwhile is a
 * failure: a plain Error, as without the signal).
 */
export async function migrateOnStart(
  mode: string,
  opts: MigratorOptions,
  pool: pg.Pool,
  signal?: AbortSignal,
): Promise<StartupMigrations | undefined> {
  if (mode === "off") return undefined;
  if (mode === "up") {
    const started = performance.now();
    // Never a contract, and past an unmarked file only while no older release is alive.
    const report = await run(opts, { kind: "up", phase: "start" }, signal).catch((err: unknown) => {
      // Stopped before the first step: run() and the backup say so in these words.
      if (
        err instanceof StoppedBeforeStartError ||
        (err instanceof BackupFailedError && err.interrupted)
      )
        throw new MigrationsStoppedError(`migrate: ${err.message}`, { cause: err });
      throw err;
    });
    if (report.held)
      opts.log.warn({ migration: report.held.name, why: report.held.reason }, "migrate: held back");
    for (const warning of report.warnings) opts.log.warn({ warning }, "migrate: warning");
    // A step that failed on its own as the signal came is a failure.
    if (report.failed && !report.failed.stopped) {
      const then = report.interrupted ? `; ${report.interrupted.signal} came meanwhile` : "";
      throw new Error(`migrate: ${failed(report.failed)}${then}`);
    }
    if (report.interrupted) throw new MigrationsStoppedError(stopped(report));
    return {
      applied: report.done.map((d) => ({
        name: d.name,
        ms: d.ms,
        lockRetryMs: d.lockRetryMs ?? 0,
      })),
      ms: Math.round(performance.now() - started),
      lockWaitMs: report.lockWaitMs,
      finishedAt: new Date(),
    };
  }
  const lag = await schemaLag(readMigrations(opts.dir), pool);
  if (lag.length > 0) {
    throw new Error(
      `migrate: check: ${lag.join("; ")}; run \`migrate up\` (see \`migrate status\`)`,
    );
  }
  if (mode === "verify") {
    // Loaded only here: the SQL parser the replay needs is not small.
    const { verifySchema } = await import("./verify/verify.js");
    const v = await verifySchema(opts);
    if (!v.consistent) {
      const found = v.differences.filter((d) => d.change !== "note").map((d) => d.message);
      throw new Error(
        `migrate: verify: the schema is not the one the applied migrations make: ${found.join("; ")}; see \`migrate verify\``,
      );
    }
  }
  return undefined;
}

/** The start-up `up` stopped by a signal; the message says what stands. */
export class MigrationsStoppedError extends Error {
  override name = "MigrationsStoppedError";
}

/** A step that did not complete, said as the CLI's report says it: where, why, what stays. */
function failed(f: StepFailure): string {
  const code = f.code ? ` [SQLSTATE ${f.code}]` : "";
  return `${f.name} (${f.direction}) failed at ${f.at}: ${f.message}${code} (${stepOutcome(f)})${blockersSummary(f)}`;
}

// The step in flight, stopped, is said whole, as the CLI's report says it.
function stopped(r: RunReport): string {
  const i = r.interrupted!;
  const inFlight = r.failed ? `; ${failed(r.failed)}` : "";
  const left = i.notStarted.length ? `; not started: ${i.notStarted.join(", ")}` : "";
  return `migrate: interrupted by ${i.signal}: ${r.done.length} step(s) completed and stand${inFlight}${left}`;
}

/**
 * Readiness: fails, naming them, while migrations are pending or an applied
 * file changed. An INVALID index stops a start (check mode) but not
 * readiness, nor does a migration applied by a newer version: every pod
 * turning unready at once is an outage.
 */
export function migrationReadiness(dir: string, pool: pg.Pool): () => Promise<void> {
  let source: MigrationSource | undefined;
  try {
    source = readMigrations(dir);
  } catch {
    // A folder that cannot be read reports through readiness, not as a crash.
  }
  // What /readyz shows: names of pending migrations, else only a count (the
  // problems' texts hold paths); `migrate validate` tells the rest.
  return async () => {
    if (!source) throw new Error("migrations folder unreadable");
    const client = await pool.connect().catch(() => {
      throw new Error("database unreachable");
    });
    try {
      // Readiness runs every few seconds and ignores INVALID indexes: skip that scan.
      const { pending, problems } = await inspect(client, source, { indexes: false }).catch(
        (err: unknown) => {
          throw new Error(isDatabaseUnavailable(err) ? "database unreachable" : "check failed");
        },
      );
      // Not "deleted": during a rolling deploy the new version's migrations
      // are applied while old instances, which lack their files, still serve.
      const errors = problems.filter((p) => p.severity === "error" && p.kind !== "deleted");
      const due = awaited(pending);
      if (due.length > 0) throw new Error(`pending: ${due.map((p) => p.name).join(", ")}`);
      if (errors.length > 0)
        throw new Error(`${errors.length} schema problem(s): run \`migrate validate\``);
    } finally {
      client.release();
    }
  };
}

/** How the database's schema is behind the files: pending migrations first, then errors. */
async function schemaLag(source: MigrationSource, pool: pg.Pool): Promise<string[]> {
  const client = await pool.connect();
  try {
    const { pending, problems } = await inspect(client, source);
    const found = problems.filter((p) => p.severity === "error").map((p) => p.message);
    const due = awaited(pending);
    if (due.length > 0) found.unshift(`pending: ${due.map((p) => p.name).join(", ")}`);
    return found;
  } finally {
    client.release();
  }
}

/**
 * The pending migrations this release waits for: not the contracts, which
 * stay pending by design until the previous release has stopped.
 */
const awaited = (pending: MigrationFile[]) => pending.filter((m) => m.phase?.kind !== "contract");

/** This release's migrations against the database, as the metrics show them. */
export interface MigrationCounts {
  /** Files not applied, contracts aside (they wait for the previous release to stop). */
  pending: number;
  /**
   * Migrations with a failure (migrate_failures, by any migrator) that
   * stands: not resolved by a later success, an up still not applied, a
   * down still applied. Undefined when this role may not read the table.
   */
  failed: number | undefined;
}

/**
 * Reads MigrationCounts: this release's files (read once, here) against the
 * database. Each read is one read-only transaction bounded by
 * `statementTimeoutMs`; it throws when the database cannot be read.
 */
export function migrationCounts(
  dir: string,
  pool: pg.Pool,
  statementTimeoutMs = 2000,
): () => Promise<MigrationCounts> {
  const source = readMigrations(dir);
  return () =>
    readOnly(pool, statementTimeoutMs, async (client) => {
      const { entries, pending } = await inspect(client, source, { indexes: false });
      const failures = await readFailures(client);
      const applied = new Set(entries.filter((e) => e.state === "applied").map((e) => e.name));
      const failed = failures && new Set(standing(failures, applied).map((f) => f.name)).size;
      return { pending: awaited(pending).length, failed };
    });
}

async function readOnly<T>(
  pool: pg.Pool,
  statementTimeoutMs: number,
  fn: (client: pg.ClientBase) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(
      `BEGIN READ ONLY; SET LOCAL statement_timeout = ${Math.max(1, Math.floor(statementTimeoutMs))}`,
    );
    try {
      return await fn(client);
    } finally {
      await client.query("ROLLBACK").catch(() => undefined);
    }
  } finally {
    client.release();
  }
}
