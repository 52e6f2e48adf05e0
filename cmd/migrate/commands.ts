import { statSync } from "node:fs";
import { resolve } from "node:path";
import type { Config } from "../../internal/conf/load.js";
import { parseDurationMs } from "../../internal/conf/duration.js";
import { DatabaseUrlError } from "../../internal/migrate/connect.js";
import { status } from "../../internal/migrate/inspect.js";
import { migratorOptions } from "../../internal/migrate/options.js";
import type { Command, MigratorOptions } from "../../internal/migrate/runner.js";
import type { Logger } from "../../internal/pkg/log/logger.js";
import * as print from "./print.js";

// Heavy modules (the config schema, node-pg-migrate, the SQL parser, the
// logger) load only in the commands that use them: `status` and `--help`
// stay quick.
const runner = () => import("../../internal/migrate/runner.js");

/** The parsed command line, as yargs hands it over. */
export interface Args {
  conf?: string;
  "database-url"?: string;
  embedded?: boolean;
  dir?: string;
  "connect-timeout"?: string;
  "lock-wait"?: string;
  "lock-timeout"?: string;
  "statement-timeout"?: string;
  /** migration or file: yargs' choices refuse anything else. */
  transactions?: string;
  "dry-run"?: boolean;
  json?: boolean;
  "allow-out-of-order"?: boolean;
  all?: boolean;
  n?: string;
  name?: string;
  version?: string;
}

/** The command line itself is wrong: exit 2, nothing was touched. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** 2 for usage and configuration, 1 for everything that failed or was refused. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof InterruptedError) return err.exitCode;
  const usage =
    err instanceof UsageError ||
    err instanceof DatabaseUrlError ||
    (err instanceof Error && err.name === "ConfigError");
  return usage ? 2 : 1;
}

const out = (text: string) => process.stdout.write(text);

const MAX_WAIT_MS = 24 * 3600 * 1000;

export const handlers = {
  up: (args: Args) =>
    change(args, {
      kind: "up",
      count: count(args.n, "up"),
      allowOutOfOrder: args["allow-out-of-order"],
    }),
  down: (args: Args) => {
    if (args.all && args.n !== undefined)
      throw new UsageError(`down ${args.n} --all: give a count or --all, not both`);
    return change(args, { kind: "down", count: args.all ? "all" : (count(args.n, "down") ?? 1) });
  },
  redo: (args: Args) => change(args, { kind: "redo", count: count(args.n, "redo") ?? 1 }),

  status: (args: Args) =>
    withDatabase(
      args,
      async (opts) => {
        const s = await status(opts);
        if (args.json)
          print.json({ migrations: s.entries, pending: s.pending.length, problems: s.problems });
        else print.status(out, s.entries, s.problems);
        // A script reading only the exit code must not miss an `error:` line.
        if (s.problems.some((p) => p.severity === "error")) process.exitCode = 1;
      },
      { logs: false },
    ),

  validate: (args: Args) =>
    withDatabase(
      args,
      async (opts) => {
        const { problems, ignored } = await status(opts);
        const failed = problems.some((p) => p.severity === "error");
        if (args.json) print.json({ ok: !failed, problems, ignored });
        else print.validation(out, problems, ignored, failed);
        if (failed) process.exitCode = 1;
      },
      { logs: false },
    ),

  repair: (args: Args) =>
    withDatabase(args, async (opts) => {
      const fixed = await (await runner()).repair(opts);
      out(fixed.length ? fixed.map((n) => `recorded ${n}\n`).join("") : "nothing to repair\n");
    }),

  baseline: (args: Args) => {
    const version = args.version ?? "";
    if (!/^[0-9]{1,19}$/.test(version))
      throw new UsageError(`baseline ${version}: expected a migration version (its digits)`);
    return withDatabase(args, async (opts) => {
      const recorded = await (await runner()).baseline(opts, BigInt(version));
      out(recorded.map((n) => `recorded ${n}\n`).join(""));
    });
  },

  create: async (args: Args) => {
    const { createMigration } = await import("../../internal/migrate/create.js");
    const files = await createMigration(await migrationsDir(args), args.name ?? "");
    out(`${files.up}\n${files.down}\n`);
  },

  lint: async (args: Args) => {
    const { lintMigrations } = await import("../../internal/migrate/lint/lint.js");
    const findings = await lintMigrations(await migrationsDir(args));
    print.findings(out, findings);
    if (findings.some((f) => f.severity === "error")) process.exitCode = 1;
  },
};

/** `up`, `down`, `redo`: the plan with --dry-run, else the run, both printed. */
async function change(args: Args, command: Command): Promise<void> {
  // SIGINT/SIGTERM stop the run between steps, cancelling the statement in
  // flight, and the report still says what was applied; a second one exits
  // at once.
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) process.exit(signalExitCode(signal));
    stop.abort(signal);
  };
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
  try {
    await withDatabase(args, async (opts) => {
      const { plan, run } = await runner();
      if (args["dry-run"]) {
        const p = await plan(opts, command);
        print.warnings(p.warnings);
        if (args.json)
          print.json({ dryRun: true, ...p, steps: p.steps.map(({ migration: _, ...s }) => s) });
        else print.plan(out, p);
        return;
      }
      const report = await run(opts, command, stop.signal);
      print.warnings(report.warnings);
      if (args.json) print.json(report);
      else print.report(out, report);
      if (report.failed) process.exitCode = 1;
      if (report.interrupted)
        process.exitCode = signalExitCode(report.interrupted.signal as NodeJS.Signals);
    });
  } catch (err) {
    if (!stop.signal.aborted) throw err;
    throw new InterruptedError(
      (err as Error).message,
      signalExitCode(stop.signal.reason as NodeJS.Signals),
    );
  } finally {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
  }
}

/** Stopped by a signal before anything ran: exit 128 + the signal's number, as a shell reports it. */
class InterruptedError extends Error {
  override name = "InterruptedError";
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (signal === "SIGINT" ? 2 : 15);
}

// N: a positive integer, or absent. `0`, `-1`, `abc`, `all`, `1.5` are refused
// here: node-pg-migrate reads a count of 0 as "everything".
function count(n: string | undefined, command: string): number | undefined {
  if (n === undefined) return undefined;
  if (!/^[1-9][0-9]{0,8}$/.test(n)) {
    const all = command === "down" ? "; to revert every migration, say `down --all`" : "";
    throw new UsageError(`${command} ${JSON.stringify(n)}: N must be a positive integer${all}`);
  }
  return Number(n);
}

async function migrationsDir(args: Args): Promise<string> {
  return migrationsFolder(
    args.dir,
    migratorOptions((await config(args))?.data?.database, "", silentLog).dir,
  );
}

/**
 * --dir, else the configured (or the project's) folder, which must exist. An
 * empty --dir is refused rather than read as "the default": an unset shell
 * variable would otherwise apply this project's migrations to the target.
 */
function migrationsFolder(flag: string | undefined, configured: string): string {
  if (flag !== undefined && flag.trim() === "") {
    throw new UsageError(
      "--dir is empty (an unset shell variable?): name the migrations folder; nothing was changed",
    );
  }
  const dir = resolve(flag ?? configured);
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
    const what = flag !== undefined ? "--dir" : "the configured migrations folder";
    throw new UsageError(`${what} ${dir}: no such directory; nothing was changed`);
  }
  return dir;
}

async function config(args: Args): Promise<Config | undefined> {
  if (!args.conf) return undefined;
  const { loadConfig } = await import("../../internal/conf/load.js");
  // DATABASE_URL is weighed in databaseUrl(), against --database-url; the
  // rest of the environment applies as for the server.
  return loadConfig(args.conf, { ...process.env, DATABASE_URL: undefined });
}

// Commands that only read log nothing; the logger loads with the rest.
const silentLog = { debug() {}, info() {}, warn() {}, error() {} } as unknown as Logger;

async function logger(conf: Config | undefined): Promise<Logger> {
  const { createLogger } = await import("../../internal/pkg/log/logger.js");
  return createLogger({
    level: conf?.log?.level || process.env.LOG_LEVEL || "info",
    format: "json",
    destination: process.stderr,
  });
}

/**
 * Resolves which database, always explicitly (--database-url, DATABASE_URL,
 * the config's data.database.source, or --embedded), and every duration
 * flag, before connecting; then runs `fn` and stops an embedded cluster it
 * started.
 */
async function withDatabase(
  args: Args,
  fn: (opts: MigratorOptions) => Promise<void>,
  { logs = true } = {},
) {
  const conf = await config(args);
  const url = databaseUrl(args, conf);
  const log = logs || url === undefined ? await logger(conf) : silentLog;
  const opts = migratorOptions(conf?.data?.database, url ?? "", log);
  opts.dir = migrationsFolder(args.dir, opts.dir);
  if (args.transactions) opts.transactions = args.transactions as MigratorOptions["transactions"];
  for (const [flag, key] of [
    ["connect-timeout", "connectTimeoutMs"],
    ["lock-wait", "lockWaitMs"],
    ["lock-timeout", "lockTimeoutMs"],
    ["statement-timeout", "statementTimeoutMs"],
  ] as const) {
    const text = args[flag];
    if (text === undefined) continue;
    const ms = parseDurationMs(text);
    // Timers and PostgreSQL's timeouts hold at most 2^31-1 ms (about 24 days).
    if (ms === undefined || ms > MAX_WAIT_MS || (key === "connectTimeoutMs" && ms <= 0))
      throw new UsageError(`--${flag} ${text}: expected a duration such as 30s or 2m, at most 24h`);
    opts[key] = ms;
  }
  if (url !== undefined) return fn(opts);
  const { startEmbeddedPostgres } = await import("../../internal/pkg/embedded_pg/embedded_pg.js");
  const embedded = await startEmbeddedPostgres(resolve(".data"), log, { reuseRunning: true });
  try {
    await fn({ ...opts, databaseUrl: embedded.url });
  } catch (err) {
    // The command's failure is the news; a failing stop must not hide it.
    await embedded.stop().catch(() => undefined);
    throw err;
  }
  await embedded.stop();
}

/** The URL named explicitly, or undefined for --embedded; anything else is a usage error. */
function databaseUrl(args: Args, conf: Config | undefined): string | undefined {
  const flag = args["database-url"];
  if (flag !== undefined && flag.trim() === "")
    throw new UsageError("--database-url is empty: give a postgres:// URL");
  const env = process.env.DATABASE_URL || undefined;
  const url = flag ?? env ?? (conf?.data?.database?.source || undefined);
  if (args.embedded) {
    if (url !== undefined) {
      const from = flag
        ? "--database-url"
        : env
          ? "DATABASE_URL"
          : "the config's data.database.source";
      throw new UsageError(`--embedded and ${from} both name a database; give one`);
    }
    return undefined;
  }
  if (url === undefined) {
    throw new UsageError(
      "no database named: pass --database-url, set DATABASE_URL, or -conf a config with data.database.source " +
        "(--embedded for the development cluster in ./.data)",
    );
  }
  return url;
}
