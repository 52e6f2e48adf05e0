import type pg from "pg";
import { sqlstateOf } from "../pkg/dberr/dberr.js";
import type { StepFailure, StepResult } from "./apply.js";
import { BackupFailedError, takeBackup, type Backup } from "./backup.js";
import { connect, disconnect } from "./connect.js";
import { emit, type MigrationEvent } from "./events.js";
import { recordFailure, resolveFailures } from "./failure_record.js";
import { ensureConsentTable } from "./consent_record.js";
import { consented, ConsentRequiredError, gateOf, type Gate } from "./lint/consent.js";
import { gateContracts, stillClear } from "./contract_gate.js";
import { describeInstance, ensureInstancesTable } from "./instances.js";
import type { MigratorOptions } from "./options.js";
import type { Command, Held, Step } from "./plan.js";
import { prepare, type Prepared } from "./prepare.js";
import { StoppedBeforeStartError } from "./lock.js";
import { cancelBackend, QUERY_CANCELED } from "./cancel.js";
import { locked, replyTimeoutMs, settle } from "./session.js";
import { lockWatch } from "./lock_watch.js";
import { refuseOldTransactions } from "./old_transactions.js";
import { applyPatiently } from "./retry.js";
import { applyBackfilled } from "./backfill/run.js";
import { readMigrations } from "./source.js";
import { loadSqlParser } from "./sql.js";
import { ensureStateTable, recordApplied } from "./state.js";

// The commands that change the schema: plan (what would run) and run.

/** What a run did: adopted versions, each step that ran, and the one that failed. */
export interface RunReport {
  /** Versions recorded as applied from golang-migrate's schema_migrations. */
  adopted: string[];
  /** The backup taken before the first step (data.database.migration.backup_command). */
  backup?: Backup;
  done: StepResult[];
  failed: StepFailure | undefined;
  /** Non-fatal findings: broken down files of pending migrations, odd files. */
  warnings: string[];
  /** Set when the run was stopped by `signal`: which signal, and the steps never started. */
  interrupted?: { signal: string; notStarted: string[] };
  /** How long the run waited for the migration lock (another migrator held it). */
  lockWaitMs: number;
  /** Where a phased `up` stopped (a migration of another phase), and why. */
  held?: Held;
}

/** A plan: what `run` would do from the current state, without changing anything. */
export interface Plan {
  adopted: string[];
  steps: (Step & {
    transactional: boolean;
    ownTransactions: boolean;
    /** Up steps: what the consent gate says of the file; `up` refuses when not `ok`. */
    gate?: Gate;
    /** A contract: the live instances that still need the schema before it (`up` refuses without --force). */
    waitsFor?: string[];
    /** Its batched backfills: where, on what, and how (backfill/declare.ts). */
    backfills?: {
      line: number;
      table: string;
      batch: number;
      pauseMs: number;
      lockTimeoutMs?: number;
    }[];
  })[];
  held?: Held;
  warnings: string[];
}

export type { Command, Step, StepFailure, StepResult };

/**
 * Reads the state and returns what `command` would do; takes no lock, writes
 * nothing. `signal` cancels the read in flight (one waiting on a lock, say)
 * and ends it with StoppedBeforeStartError: no plan from a read cut short.
 */
export async function plan(
  opts: MigratorOptions,
  command: Command,
  signal?: AbortSignal,
): Promise<Plan> {
  const source = readMigrations(opts.dir);
  const client = await connect(opts.databaseUrl, opts.connectTimeoutMs, {
    replyTimeoutMs: replyTimeoutMs(opts, 1),
  });
  const cancel = () => void cancelBackend(opts, client);
  signal?.addEventListener("abort", cancel);
  try {
    const p = signal?.aborted
      ? undefined
      : await prepare(client, source, command, opts).catch((err: unknown) => {
          if (!signal?.aborted) throw err;
          return undefined;
        });
    if (!p || signal?.aborted)
      throw new StoppedBeforeStartError(
        `interrupted by ${String(signal!.reason)} while reading the state; nothing was changed`,
      );
    return {
      adopted: p.adopt.map((f) => f.name),
      steps: p.steps.map((s) => {
        const script = p.scripts.get(s)!;
        const c = p.consent.get(s);
        const waits = p.blockers.get(s);
        const fills = p.backfills.get(s);
        return {
          ...s,
          transactional: script.transactional,
          ownTransactions: script.ownTransactions === true,
          ...(c ? { gate: gateOf(c) } : {}),
          ...(waits ? { waitsFor: waits.map(describeInstance) } : {}),
          ...(fills
            ? {
                backfills: fills.map((b) => ({
                  line: b.statement.line,
                  table: b.table,
                  ...b.options,
                })),
              }
            : {}),
        };
      }),
      ...(p.held ? { held: p.held } : {}),
      warnings: p.warnings,
    };
  } finally {
    signal?.removeEventListener("abort", cancel);
    await disconnect(client, opts.connectTimeoutMs);
  }
}

/**
 * Runs `command` under the migration lock: each step in its own transaction
 * (or statement by statement where PostgreSQL requires it), stopping at the
 * first failure. Every file that will run is parsed and checked before
 * anything changes, and refused as a whole when a file lacks consent for a
 * dangerous statement.
 */
export function run(
  opts: MigratorOptions,
  command: Command,
  signal?: AbortSignal,
): Promise<RunReport> {
  const source = readMigrations(opts.dir);
  // Compiled while connecting; awaited (and its failure seen) in prepare().
  loadSqlParser().catch(() => undefined);
  const started = performance.now();
  let ran: RunReport | undefined;
  const finished = (e: Omit<Extract<MigrationEvent, { event: "run_finished" }>, "event" | "ms">) =>
    emit(opts, { event: "run_finished", ...e, ms: Math.round(performance.now() - started) });
  return locked(opts, signal, async (client, lockWaitMs) => {
    // Planned under the lock: whoever held it may have applied everything.
    const p = await prepare(client, source, command, opts);
    emit(opts, {
      event: "run_started",
      command: command.kind,
      steps: p.steps.map((s) => `${s.name} (${s.direction})`),
      lockWaitMs,
    });
    // Refused as a whole, before anything (even adoption) is written.
    const refused = [...p.consent.values()].filter((c) => !consented(c));
    if (refused.length > 0) throw new ConsentRequiredError(refused);
    gateContracts(opts, p.blockers);
    await refuseOldTransactions(opts, client, p);
    const backup =
      opts.backupCommand && p.steps.length > 0
        ? await takeBackup(opts, client, p.steps, signal)
        : undefined;
    await ensureStateTable(client);
    // Made by the migrator too: a server whose role may not create it still finds it.
    if (p.steps.length > 0) await ensureInstancesTable(client);
    if (p.steps.some((s) => s.consent)) await ensureConsentTable(client);
    await recordApplied(client, p.adopt);
    if (p.adopt.length > 0) {
      opts.log.info(
        { adopted: p.adopt.length, through: p.adopt.at(-1)!.name },
        "adopted golang-migrate's schema_migrations",
      );
    }
    const report: RunReport = (ran = {
      adopted: p.adopt.map((f) => f.name),
      ...(backup ? { backup } : {}),
      done: [],
      failed: undefined,
      warnings: p.warnings,
      lockWaitMs,
      ...(p.held ? { held: p.held } : {}),
    });
    await applySteps(opts, client, p, report, lockWaitMs, signal);
    if (p.steps.length === 0) opts.log.info({ lockWaitMs }, "migrations: nothing to do");
    finished({
      completed: report.done.length,
      failed: report.failed?.name,
      interrupted: report.interrupted?.signal,
    });
    return report;
  }).catch((err: unknown) => {
    // Stopped before the first step (our cancel of a bookkeeping read or
    // write waiting on a lock, or one that missed and ran into lock_timeout):
    // said as the stop it is. A backup's own stop already says so.
    if (
      signal?.aborted &&
      ran === undefined &&
      !(err instanceof StoppedBeforeStartError) &&
      !(err instanceof BackupFailedError)
    ) {
      const code = (err as { code?: string }).code;
      const why = code === QUERY_CANCELED ? "" : ` (${(err as Error).message})`;
      err = new StoppedBeforeStartError(
        `interrupted by ${String(signal.reason)} before the first step; no migration was applied${why}`,
        { cause: err },
      );
    }
    finished({
      completed: ran?.done.length ?? 0,
      ...(signal?.aborted ? { interrupted: String(signal.reason) } : {}),
      // The server's own words stay out of events: its SQLSTATE, as for any error.
      error: eventError((err as { cause?: unknown }).cause ?? err),
    });
    throw err;
  });
}

/**
 * Runs the planned steps in order into `report`, stopping at the first
 * failure (read back when the connection was lost) or at `signal`, which
 * also cancels the statement in flight; steps not begun stay so.
 */
async function applySteps(
  opts: MigratorOptions,
  client: pg.Client,
  p: Prepared,
  report: RunReport,
  lockWaitMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const watch = lockWatch(opts, client);
  try {
    for (const [i, s] of p.steps.entries()) {
      if (signal?.aborted) {
        report.interrupted = interruption(signal, p.steps.slice(i));
        return;
      }
      let result: Awaited<ReturnType<typeof applyPatiently>>;
      let announced = false;
      try {
        const waits = await stillClear(opts, client, s);
        if (waits) {
          report.failed = waits;
          opts.log.error({ migration: s.name }, "contract refused: an older instance is alive");
          return;
        }
        emit(opts, { event: "migration_started", name: s.name, direction: s.direction });
        announced = true;
        const fills = p.backfills.get(s);
        result = fills
          ? await applyBackfilled(opts, client, s, p.scripts.get(s)!, fills, watch, signal)
          : await applyPatiently(opts, client, s, p.scripts.get(s)!, watch, signal);
      } catch (err) {
        // Only reads before a step's first statement throw (its statements
        // end in a result): cancelled by the signal there, it was not begun,
        // and the report of the steps before it stands.
        if (!signal?.aborted) {
          // Its start is closed: failed before its first statement.
          if (announced) {
            const { name, direction, file: at } = s;
            const code = sqlstateOf(err);
            emit(opts, {
              event: "migration_failed",
              name,
              direction,
              at,
              ...(code ? { code } : {}),
              lockAttempts: 0,
            });
          }
          throw err;
        }
        if (announced) {
          const { name, direction } = s;
          emit(opts, {
            event: "migration_stopped",
            name,
            direction,
            signal: String(signal.reason),
          });
        }
        report.interrupted = interruption(signal, p.steps.slice(i));
        return;
      }
      const dropped = "ok" in result ? result.ok.dropped : result.failed.dropped;
      for (const index of dropped)
        opts.log.warn({ index }, "dropped an INVALID index left by an interrupted build");
      if ("failed" in result) {
        const f = result.failed;
        emit(opts, {
          event: "migration_failed",
          name: s.name,
          direction: s.direction,
          at: f.at,
          ...(f.code ? { code: f.code } : {}),
          // The refusals are kept in lockAttempts; a last try that failed otherwise counts too.
          lockAttempts: (f.lockAttempts?.length ?? 0) + (f.code === "55P03" ? 0 : 1),
          ...(f.stopped ? { stopped: true } : {}),
        });
        report.failed = f;
        if (f.connectionLost) f.outcome = await settle(opts, client, s);
        // A failure of its own that came with the signal is still recorded.
        await recordFailure(opts, client, f, { interrupted: f.stopped === true });
        opts.log.error(
          { migration: s.name, direction: s.direction },
          f.stopped ? "migration stopped" : "migration failed",
        );
        if (signal?.aborted) report.interrupted = interruption(signal, p.steps.slice(i + 1));
        return;
      }
      report.done.push(result.ok);
      if (p.unresolved.has(s.name)) await resolveFailures(client, s.name, opts.log);
      emit(opts, {
        event: "migration_finished",
        name: s.name,
        direction: s.direction,
        ms: result.ok.ms,
        lockAttempts: (result.ok.lockAttempts?.length ?? 0) + 1,
      });
      opts.log.info(
        { migration: s.name, direction: s.direction, ms: result.ok.ms, lockWaitMs },
        "migration applied",
      );
    }
    if (signal?.aborted) report.interrupted = interruption(signal, []);
  } finally {
    await watch.close();
  }
}

// A server error's message may quote a value from the file's SQL (`invalid
// input syntax for type integer: "…"`): an event names its SQLSTATE only.
function eventError(err: unknown): string {
  const code = sqlstateOf(err);
  if (code) return `SQLSTATE ${code}`;
  return (err as Error).message;
}

function interruption(signal: AbortSignal, notStarted: Step[]): RunReport["interrupted"] {
  return {
    signal: String(signal.reason),
    notStarted: notStarted.map((s) => `${s.name} (${s.direction})`),
  };
}
