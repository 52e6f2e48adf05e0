import { runner, type MigrationBuilder } from "node-pg-migrate";
import pg from "pg";
import type { Logger } from "../../pkg/log/logger.js";
import { acquireLock, releaseLock } from "./lock.js";
import { readMigrations, type MigrationFile } from "./source.js";
import { lineAt, loadSqlParser, splitStatements, type Statement } from "./sql.js";
import {
  CHECKSUM_SETTING,
  MIGRATIONS_TABLE,
  compare,
  ensureStateTable,
  readApplied,
  type Problem,
} from "./state.js";

/** How to reach the database and how patient to be. */
export interface MigratorOptions {
  databaseUrl: string;
  /** The folder of NNNN_name.up.sql / .down.sql pairs. */
  dir: string;
  /** How long to wait for another migrator's lock before giving up. */
  lockWaitMs: number;
  /** Session lock_timeout while migrating: fail fast instead of queueing behind traffic. */
  lockTimeoutMs: number;
  /** Session statement_timeout while migrating; 0 disables it. */
  statementTimeoutMs: number;
  log: Logger;
}

export interface RunOptions {
  /** How many migrations; all pending for up, 1 for down and redo when absent. */
  count?: number;
  /** Print nothing, touch nothing: return the plan only. */
  dryRun?: boolean;
  /** Apply a pending migration that sorts before an applied one. */
  allowOutOfOrder?: boolean;
}

export interface Step {
  name: string;
  direction: "up" | "down";
  file: string;
  sql: string;
  noTransaction: boolean;
}

export interface StepResult extends Step {
  ms: number;
}

/** A migration failed; it was rolled back (when transactional) and names where. */
export class MigrationFailedError extends Error {
  override name = "MigrationFailedError";
}

/** The state or the files forbid running (edited applied file, out of order…). */
export class MigrationRefusedError extends Error {
  override name = "MigrationRefusedError";
  constructor(readonly problems: Problem[]) {
    super(problems.map((p) => p.message).join("\n"));
  }
}

/** Applies pending migrations, each in its own transaction, under the lock. */
export function up(opts: MigratorOptions, run: RunOptions = {}): Promise<StepResult[] | Step[]> {
  return execute(opts, run, (files, applied) => {
    const { pending, problems } = compare(files, applied);
    refuseOn(problems.filter((p) => !(run.allowOutOfOrder && p.kind === "out-of-order")));
    return pending.slice(0, run.count ?? pending.length).map((f) => step(f, "up"));
  });
}

/** Reverts the last `count` (default 1) applied migrations, newest first. */
export function down(opts: MigratorOptions, run: RunOptions = {}): Promise<StepResult[] | Step[]> {
  return execute(opts, run, (files, applied) => revertPlan(files, applied, run.count ?? 1));
}

/** Reverts the last `count` (default 1) migrations, then applies them again. */
export function redo(opts: MigratorOptions, run: RunOptions = {}): Promise<StepResult[] | Step[]> {
  return execute(opts, run, (files, applied) => {
    const reverts = revertPlan(files, applied, run.count ?? 1);
    const byName = new Map(files.map((f) => [f.name, f]));
    return [...reverts, ...reverts.toReversed().map((s) => step(byName.get(s.name)!, "up"))];
  });
}

function revertPlan(files: MigrationFile[], applied: { name: string }[], count: number): Step[] {
  const { problems } = compare(files, applied as never);
  refuseOn(problems.filter((p) => p.kind === "changed" || p.kind === "deleted"));
  const byName = new Map(files.map((f) => [f.name, f]));
  return applied
    .slice(-count)
    .toReversed()
    .map((a) => {
      const file = byName.get(a.name)!;
      if (file.down === undefined) {
        throw new MigrationRefusedError([
          {
            kind: "deleted",
            name: a.name,
            severity: "error",
            message: `${file.upPath} has no ${a.name}.down.sql: it cannot be reverted`,
          },
        ]);
      }
      return step(file, "down");
    });
}

function step(file: MigrationFile, direction: "up" | "down"): Step {
  return {
    name: file.name,
    direction,
    file: direction === "up" ? file.upPath : file.downPath!,
    sql: direction === "up" ? file.up : file.down!,
    noTransaction: file.noTransaction,
  };
}

function refuseOn(problems: Problem[]): void {
  const errors = problems.filter((p) => p.severity === "error");
  if (errors.length > 0) throw new MigrationRefusedError(errors);
}

type Planner = (files: MigrationFile[], applied: Awaited<ReturnType<typeof readApplied>>) => Step[];

async function execute(
  opts: MigratorOptions,
  run: RunOptions,
  plan: Planner,
): Promise<StepResult[] | Step[]> {
  await loadSqlParser();
  const files = await readMigrations(opts.dir);
  const statements = new Map<string, Statement[]>();
  for (const f of files) {
    statements.set(f.upPath, splitStatements(f.up, f.upPath));
    if (f.down !== undefined) statements.set(f.downPath!, splitStatements(f.down, f.downPath!));
  }
  const session = await connect(opts.databaseUrl);
  try {
    if (run.dryRun) return plan(files, await readApplied(session.client));
    const lockWaitMs = await acquireLock(session.client, opts.lockWaitMs, () =>
      opts.log.info("another migration holds the lock; waiting"),
    );
    try {
      await ensureStateTable(session.client);
      // Re-read under the lock: whoever held it may have applied everything.
      const steps = plan(files, await readApplied(session.client));
      // A migrator killed mid-statement must not leave its backend running
      // (holding the lock and the transaction) until the statement ends.
      await session.client
        .query("SET client_connection_check_interval = 1000")
        .catch(() => undefined);
      await session.client.query(
        `SET lock_timeout = ${Math.max(0, Math.floor(opts.lockTimeoutMs))}`,
      );
      await session.client.query(
        `SET statement_timeout = ${Math.max(0, Math.floor(opts.statementTimeoutMs))}`,
      );
      const results: StepResult[] = [];
      for (const s of steps) {
        results.push(await apply(session, opts, s, statements.get(s.file)!, files, lockWaitMs));
      }
      if (steps.length === 0) opts.log.info({ lockWaitMs }, "migrations: nothing to do");
      return results;
    } finally {
      await session.client
        .query(
          "RESET lock_timeout; RESET statement_timeout; RESET client_connection_check_interval",
        )
        .catch(() => undefined);
      await releaseLock(session.client).catch(() => undefined);
    }
  } finally {
    await session.client.end().catch(() => undefined);
  }
}

interface Session {
  client: pg.Client;
  /** The last SQL text sent: on failure, the failing statement. */
  lastQuery(): string;
}

async function connect(databaseUrl: string): Promise<Session> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: "migrate" });
  await client.connect();
  // A connection error after connect would otherwise crash the process.
  client.on("error", () => undefined);
  let last = "";
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (
    ...args: unknown[]
  ) => {
    if (typeof args[0] === "string") last = args[0];
    return query(...args);
  };
  return { client, lastQuery: () => last };
}

async function apply(
  session: Session,
  opts: MigratorOptions,
  s: Step,
  statements: Statement[],
  files: MigrationFile[],
  lockWaitMs: number,
): Promise<StepResult> {
  const { client } = session;
  const file = files.find((f) => f.name === s.name)!;
  const started = performance.now();
  await client.query("SELECT set_config($1, $2, false)", [
    CHECKSUM_SETTING,
    s.direction === "up" ? file.checksum : "",
  ]);
  try {
    await runner({
      dbClient: client,
      dir: opts.dir,
      migrationsTable: MIGRATIONS_TABLE,
      direction: s.direction,
      file: s.name,
      count: 1,
      noLock: true,
      // Each migration in its own transaction; a failure rolls back that one only.
      singleTransaction: false,
      // Order is checked by `compare` with clearer messages.
      checkOrder: false,
      migrationLoaderStrategies: [
        { extensions: [".sql"], loader: loaderFor(files, s, statements) },
      ],
      log: (message: string) => opts.log.debug({ nodePgMigrate: message }),
    });
  } catch (err) {
    const failing = session.lastQuery();
    // node-pg-migrate sends no ROLLBACK when a migration fails; end the aborted
    // transaction here so the session (and its lock) is usable again.
    await client.query("ROLLBACK").catch(() => undefined);
    throw new MigrationFailedError(failureMessage(s, statements, failing, err));
  } finally {
    await client
      .query("SELECT set_config($1, '', false)", [CHECKSUM_SETTING])
      .catch(() => undefined);
  }
  const ms = Math.round(performance.now() - started);
  opts.log.info({ migration: s.name, direction: s.direction, ms, lockWaitMs }, "migration applied");
  return { ...s, ms };
}

// The grouped loader of node-pg-migrate, with our files as read and checked:
// statements are sent one by one (so a failure names its line), and a file
// with the no-transaction marker runs outside a transaction.
function loaderFor(files: MigrationFile[], s: Step, statements: Statement[]) {
  return async () =>
    files.map((f) => ({
      id: f.name,
      filePaths: [f.upPath, ...(f.downPath ? [f.downPath] : [])],
      actions: {
        up: (pgm: MigrationBuilder) => {
          if (f.noTransaction) pgm.noTransaction();
          if (f.name === s.name && s.direction === "up")
            statements.forEach((st) => pgm.sql(st.sql));
        },
        down: (pgm: MigrationBuilder) => {
          if (f.noTransaction) pgm.noTransaction();
          if (f.name === s.name && s.direction === "down")
            statements.forEach((st) => pgm.sql(st.sql));
        },
      },
    }));
}

function failureMessage(s: Step, statements: Statement[], lastQuery: string, err: unknown): string {
  const e = err as Error & { position?: string };
  // node-pg-migrate may append a semicolon to each statement it sends.
  const bare = (sql: string) => sql.trim().replace(/;+$/, "").trim();
  const failed = statements.find((st) => bare(st.sql) === bare(lastQuery));
  let where = s.file;
  if (failed) {
    const inStatement = e.position ? lineAt(failed.sql, Number(e.position) - 1) - 1 : 0;
    where = `${s.file}:${failed.line + inStatement}`;
  }
  const rolledBack = s.noTransaction
    ? "it ran outside a transaction: check what it left before rerunning"
    : "rolled back; earlier migrations stay applied";
  return `migration ${s.name} (${s.direction}) failed at ${where}: ${e.message} (${rolledBack})`;
}

/** Every migration's state and the problems found; reads only, takes no lock. */
export async function status(opts: Pick<MigratorOptions, "databaseUrl" | "dir">) {
  const files = await readMigrations(opts.dir);
  const session = await connect(opts.databaseUrl);
  try {
    return compare(files, await readApplied(session.client));
  } finally {
    await session.client.end().catch(() => undefined);
  }
}

/** Records the current files' checksums for applied migrations (accepting edits). */
export async function repair(opts: MigratorOptions): Promise<string[]> {
  const files = await readMigrations(opts.dir);
  const session = await connect(opts.databaseUrl);
  try {
    await acquireLock(session.client, opts.lockWaitMs);
    try {
      await ensureStateTable(session.client);
      const { problems } = compare(files, await readApplied(session.client));
      const fixed: string[] = [];
      for (const p of problems.filter((x) => x.kind === "changed" || x.kind === "unrecorded")) {
        const file = files.find((f) => f.name === p.name)!;
        await session.client.query(`UPDATE ${MIGRATIONS_TABLE} SET checksum = $1 WHERE name = $2`, [
          file.checksum,
          file.name,
        ]);
        opts.log.info({ migration: file.name, was: p.kind }, "checksum recorded");
        fixed.push(file.name);
      }
      return fixed;
    } finally {
      await releaseLock(session.client).catch(() => undefined);
    }
  } finally {
    await session.client.end().catch(() => undefined);
  }
}
