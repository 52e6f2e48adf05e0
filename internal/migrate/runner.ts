import type pg from "pg";
import type { Logger } from "../pkg/log/logger.js";
import {
  adoptable,
  readGolangMigrate,
  recordApplied,
  AdoptionRefusedError,
  type GolangMigrateState,
} from "./adopt.js";
import { analyse, type Script, type TransactionMode } from "./analyse.js";
import { applyStep, type StepFailure, type StepResult } from "./apply.js";
import { connect, disconnect } from "./connect.js";
import { acquireLock, releaseLock } from "./lock.js";
import { planSteps, type Command, type Step } from "./plan.js";
import { cancelBackend, replyTimeoutMs, sessionIdleMs, settle } from "./session.js";
import { readMigrations, type MigrationFile, type MigrationSource } from "./source.js";
import { FileLineError, loadSqlParser } from "./sql.js";
import { compare, ensureStateTable, readApplied, stateTableExists, type Applied } from "./state.js";

/** How to reach the database and how patient to be. */
export interface MigratorOptions {
  databaseUrl: string;
  /** The folder of NNNN_title.up.sql / .down.sql pairs. */
  dir: string;
  /** Give up connecting after this long (a URL's connect_timeout wins). */
  connectTimeoutMs: number;
  /** How long to wait for another migrator's lock before giving up. */
  lockWaitMs: number;
  /** Session lock_timeout while migrating: fail fast instead of queueing behind traffic. */
  lockTimeoutMs: number;
  /** Session statement_timeout while migrating; 0 disables it. */
  statementTimeoutMs: number;
  /** Who owns transactions (default `migration`): see TransactionMode. */
  transactions?: TransactionMode;
  log: Logger;
}

/** What a run did: adopted versions, each step that ran, and the one that failed. */
export interface RunReport {
  /** Versions recorded as applied from golang-migrate's schema_migrations. */
  adopted: string[];
  done: StepResult[];
  failed: StepFailure | undefined;
  /** Non-fatal findings: broken down files of pending migrations, odd files. */
  warnings: string[];
  /** Set when the run was stopped by `signal`: which signal, and the steps never started. */
  interrupted?: { signal: string; notStarted: string[] };
}

/** A plan: what `run` would do from the current state, without changing anything. */
export interface Plan {
  adopted: string[];
  steps: (Step & { transactional: boolean; ownTransactions: boolean })[];
  warnings: string[];
}

export type { Command, Step, StepFailure, StepResult };

/** Reads the state and returns what `command` would do; takes no lock, writes nothing. */
export async function plan(opts: MigratorOptions, command: Command): Promise<Plan> {
  const source = readMigrations(opts.dir);
  const client = await connect(opts.databaseUrl, opts.connectTimeoutMs, {
    replyTimeoutMs: replyTimeoutMs(opts, 1),
  });
  try {
    const p = await prepare(client, source, command, opts.transactions);
    return {
      adopted: p.adopt.map((f) => f.name),
      steps: p.steps.map((s) => {
        const script = p.scripts.get(s)!;
        return {
          ...s,
          transactional: script.transactional,
          ownTransactions: script.ownTransactions === true,
        };
      }),
      warnings: p.warnings,
    };
  } finally {
    await disconnect(client, opts.connectTimeoutMs);
  }
}

/**
 * Runs `command` under the migration lock: each step in its own transaction
 * (or statement by statement where PostgreSQL requires it), stopping at the
 * first failure. Every file that will run is parsed and checked before
 * anything changes.
 */
export function run(
  opts: MigratorOptions,
  command: Command,
  signal?: AbortSignal,
): Promise<RunReport> {
  const source = readMigrations(opts.dir);
  // Compiled while connecting; awaited (and its failure seen) in prepare().
  loadSqlParser().catch(() => undefined);
  return locked(opts, signal, async (client, lockWaitMs) => {
    // Planned under the lock: whoever held it may have applied everything.
    const p = await prepare(client, source, command, opts.transactions);
    await ensureStateTable(client);
    await recordApplied(client, p.adopt);
    if (p.adopt.length > 0) {
      opts.log.info(
        { adopted: p.adopt.length, through: p.adopt.at(-1)!.name },
        "adopted golang-migrate's schema_migrations",
      );
    }
    const report: RunReport = {
      adopted: p.adopt.map((f) => f.name),
      done: [],
      failed: undefined,
      warnings: p.warnings,
    };
    await applySteps(opts, client, p, report, lockWaitMs, signal);
    if (p.steps.length === 0) opts.log.info({ lockWaitMs }, "migrations: nothing to do");
    return report;
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
  const cancel = () => void cancelBackend(opts, client);
  signal?.addEventListener("abort", cancel);
  try {
    for (const [i, s] of p.steps.entries()) {
      if (signal?.aborted) {
        report.interrupted = interruption(signal, p.steps.slice(i));
        return;
      }
      const result = await applyStep(client, opts.dir, s, p.scripts.get(s)!, (n) =>
        replyTimeoutMs(opts, n),
      );
      const dropped = "ok" in result ? result.ok.dropped : result.failed.dropped;
      for (const index of dropped)
        opts.log.warn({ index }, "dropped an INVALID index left by an interrupted build");
      if ("failed" in result) {
        report.failed = result.failed;
        if (result.failed.connectionLost) result.failed.outcome = await settle(opts, client, s);
        opts.log.error({ migration: s.name, direction: s.direction }, "migration failed");
        if (signal?.aborted) report.interrupted = interruption(signal, p.steps.slice(i + 1));
        return;
      }
      report.done.push(result.ok);
      opts.log.info(
        { migration: s.name, direction: s.direction, ms: result.ok.ms, lockWaitMs },
        "migration applied",
      );
    }
    if (signal?.aborted) report.interrupted = interruption(signal, []);
  } finally {
    signal?.removeEventListener("abort", cancel);
  }
}

/** Records the current files' checksums for applied migrations (accepting edits). */
export function repair(opts: MigratorOptions): Promise<string[]> {
  const source = readMigrations(opts.dir);
  return locked(opts, undefined, async (client) => {
    const { problems } = compare(source.migrations, await readApplied(client));
    const fixes = problems.filter((x) => x.kind === "changed" || x.kind === "unrecorded");
    if (fixes.length > 0) await ensureStateTable(client);
    for (const p of fixes) {
      const file = source.migrations.find((f) => f.name === p.name)!;
      await client.query("UPDATE public.pgmigrations SET checksum = $1 WHERE name = $2", [
        file.checksum,
        file.name,
      ]);
      opts.log.info({ migration: file.name, was: p.kind }, "checksum recorded");
    }
    return fixes.map((p) => p.name);
  });
}

/**
 * Records every migration up to `version` as applied without running it, for
 * a database whose schema was built by other means. Refuses a database that
 * already has recorded migrations, a version no file has, and one that
 * golang-migrate's schema_migrations contradicts (dirty, or another version).
 */
export function baseline(opts: MigratorOptions, version: bigint): Promise<string[]> {
  const source = readMigrations(opts.dir);
  if (!source.migrations.some((f) => f.version === version)) {
    return Promise.reject(
      new AdoptionRefusedError(`baseline ${version}: no migration file has that version`),
    );
  }
  return locked(opts, undefined, async (client) => {
    if ((await readApplied(client)).length > 0) {
      throw new AdoptionRefusedError(
        "baseline is for a database with no recorded migrations, and this one has some (see `migrate status`); nothing was changed",
      );
    }
    refuseGolangMismatch(await readGolangMigrate(client), version);
    await ensureStateTable(client);
    const files = source.migrations.filter((f) => f.version <= version);
    await recordApplied(client, files);
    return files.map((f) => f.name);
  });
}

// golang-migrate's own record is the better witness of what ran: a baseline
// that contradicts it would hide a half-applied migration or skip real ones.
function refuseGolangMismatch(golang: GolangMigrateState | undefined, version: bigint): void {
  if (!golang || golang.version === undefined) return;
  if (golang.dirty) {
    throw new AdoptionRefusedError(
      `baseline ${version}: golang-migrate's schema_migrations says version ${golang.version} is dirty: that migration failed halfway; nothing was changed. ` +
        "Finish or undo it by hand, mark it clean (UPDATE schema_migrations SET dirty = false, with version set to the last migration fully applied), " +
        "then run `migrate up`, which adopts golang-migrate's state by itself",
    );
  }
  if (golang.version !== version) {
    throw new AdoptionRefusedError(
      `baseline ${version}: golang-migrate's schema_migrations says version ${golang.version} is applied, not ${version}; nothing was changed. ` +
        `Run \`migrate up\`, which adopts golang-migrate's state (through ${golang.version}) and applies the rest, or \`migrate baseline ${golang.version}\``,
    );
  }
}

/**
 * Connects, takes the migration lock (polling, bounded by lockWait), sets
 * the session's bounds, runs `fn`, and always releases and disconnects.
 */
async function locked<T>(
  opts: MigratorOptions,
  signal: AbortSignal | undefined,
  fn: (client: pg.Client, lockWaitMs: number) => Promise<T>,
): Promise<T> {
  const client = await connect(opts.databaseUrl, opts.connectTimeoutMs, {
    replyTimeoutMs: replyTimeoutMs(opts, 1),
  });
  try {
    const lockWaitMs = await acquireLock(
      client,
      opts.lockWaitMs,
      () => opts.log.info("another migration holds the lock; waiting"),
      signal,
    );
    try {
      const ms = (n: number) => Math.max(0, Math.floor(n));
      await client.query(
        `SET lock_timeout = ${ms(opts.lockTimeoutMs)}; SET statement_timeout = ${ms(opts.statementTimeoutMs)}`,
      );
      // A migrator killed mid-statement must not leave its backend running,
      // holding the lock (PostgreSQL 14 and later).
      await client.query("SET client_connection_check_interval = 1000").catch(() => undefined);
      // A migrator that stops talking (a stalled proxy keeps its connection
      // open) must not hold the lock for ever: the server ends such a session.
      const idle = `${sessionIdleMs(opts)}ms`;
      await client.query(`SET idle_in_transaction_session_timeout = '${idle}'`);
      await client.query(`SET idle_session_timeout = '${idle}'`).catch(() => undefined);
      return await fn(client, lockWaitMs);
    } finally {
      await releaseLock(client).catch(() => undefined);
    }
  } finally {
    await disconnect(client, opts.connectTimeoutMs);
  }
}

function interruption(signal: AbortSignal, notStarted: Step[]): RunReport["interrupted"] {
  return {
    signal: String(signal.reason),
    notStarted: notStarted.map((s) => `${s.name} (${s.direction})`),
  };
}

interface Prepared {
  adopt: MigrationFile[];
  steps: Step[];
  scripts: Map<Step, Script>;
  warnings: string[];
}

// Plans from the recorded state (or, on a database we never touched, what
// golang-migrate recorded), then parses every file that will run: nothing has
// changed if this throws.
async function prepare(
  client: pg.ClientBase,
  source: MigrationSource,
  command: Command,
  mode: TransactionMode = "migration",
): Promise<Prepared> {
  const files = source.migrations;
  let applied = await readApplied(client);
  let adopt: MigrationFile[] = [];
  if (!(await stateTableExists(client))) {
    const golang = await readGolangMigrate(client);
    if (golang) adopt = adoptable(files, golang);
    applied = adopt.map((f): Applied => ({
      name: f.name,
      runOn: new Date(),
      checksum: f.checksum,
    }));
  }
  const steps = planSteps(files, applied, command);
  const scripts = new Map<Step, Script>();
  const warnings = [...source.warnings];
  if (steps.length === 0) return { adopt, steps, scripts, warnings };
  await loadSqlParser();
  for (const s of steps) scripts.set(s, analyse(s.sql, s.file, mode));
  // A broken down file matters only when it runs: a warning at up.
  for (const s of steps.filter((x) => x.direction === "up" && x.migration.down !== undefined)) {
    try {
      analyse(s.migration.down!, s.migration.downPath!, mode);
    } catch (err) {
      if (!(err instanceof FileLineError)) throw err;
      warnings.push(`${err.message} (the down migration will fail if it runs)`);
    }
  }
  return { adopt, steps, scripts, warnings };
}
