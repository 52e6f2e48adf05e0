import { statSync } from "node:fs";
import { resolve } from "node:path";
import type { Config } from "../../internal/conf/load.js";
import { parseDurationMs } from "../../internal/conf/duration.js";
import { directSourceLeftBehind } from "../../internal/conf/env.js";
import { migratorOptions, type MigratorOptions } from "../../internal/migrate/options.js";
import type { Logger } from "../../internal/pkg/log/logger.js";

// From the command line to the migrator's options: which database (always
// named explicitly), which folder, how patient; checked before connecting.

/** The parsed command line: each option under its flag's name (internal/pkg/cli flags()). */
export interface Args {
  conf?: string;
  "database-url"?: string;
  embedded?: boolean;
  dir?: string;
  "connect-timeout"?: string;
  "lock-wait"?: string;
  "lock-timeout"?: string;
  "statement-timeout"?: string;
  /** migration or file: the option's choices refuse anything else. */
  transactions?: string;
  /** --no-retry: a lock_timeout refusal fails at once (same as --lock-attempts 1). */
  retry?: boolean;
  /** Tries in all after lock_timeout refusals, where safe (default 5). */
  "lock-attempts"?: string;
  /** Open transactions older than this are named before a concurrent index build (default 1m). */
  "old-transaction-age"?: string;
  /** wait (name them, build) or refuse (name them, apply nothing, exit 1): the option's choices refuse anything else. */
  "old-transactions"?: string;
  "dry-run"?: boolean;
  /** up --rehearse[=copy|target], plan --rehearse=…: see cmd/migrate/rehearse.ts. */
  rehearse?: string;
  "schema-from"?: string;
  json?: boolean;
  "allow-out-of-order"?: boolean;
  /** up --phase: expand or contract (the option's choices refuse anything else). */
  phase?: string;
  /** up --force: a contract past live instances of an older release. */
  force?: boolean;
  /** up --verify: the schema check after a successful up (cmd/migrate/verify.ts). */
  verify?: boolean;
  /** verify --data: the sealed values and blind indexes (cmd/migrate/verify_data.ts). */
  data?: boolean;
  /** verify --data: only rows after this id. */
  from?: string;
  "batch-size"?: string;
  operator?: string;
  /** Before a run changes anything: a shell command that takes a backup (exit 0 or nothing applies). */
  "backup-command"?: string;
  "backup-timeout"?: string;
  /** FILE or - (stdout): each step of the run as a JSON line. */
  events?: string;
  all?: boolean;
  n?: string;
  name?: string;
  version?: string;
  sizes?: boolean;
  style?: boolean;
  "error-rows"?: string;
  "error-bytes"?: string;
}

/** The command line itself is wrong: exit 2, nothing was touched. */
export class UsageError extends Error {
  override name = "UsageError";
}

const MAX_WAIT_MS = 24 * 3600 * 1000;

/** The migrations folder, for the commands that need no database (create, lint). */
export async function migrationsDir(args: Args): Promise<string> {
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

/** The -conf file loaded (environment overrides applied, the database's URLs aside), or undefined. */
export async function config(args: Args): Promise<Config | undefined> {
  if (!args.conf) return undefined;
  const { loadConfig } = await import("../../internal/conf/load.js");
  // DATABASE_URL and DATABASE_DIRECT_URL are weighed in databaseUrl(),
  // against --database-url; the rest of the environment applies as for the
  // server.
  return loadConfig(args.conf, {
    ...process.env,
    DATABASE_URL: undefined,
    DATABASE_DIRECT_URL: undefined,
  });
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
 * Resolves which database, always explicitly (--database-url, the
 * environment's or the config's, or --embedded), and every duration
 * flag, before connecting; then runs `fn` and stops an embedded cluster it
 * started.
 */
export async function withDatabase(
  args: Args,
  fn: (opts: MigratorOptions) => Promise<void>,
  { logs = true } = {},
) {
  const conf = await config(args);
  const url = databaseUrl(args, conf);
  const log = logs || url === undefined ? await logger(conf) : silentLog;
  const opts = migratorOptions(conf?.data?.database, url ?? "", log);
  opts.dir = migrationsFolder(args.dir, opts.dir);
  if (args.operator !== undefined) {
    if (args.operator.trim() === "") throw new UsageError("--operator is empty: give a name");
    opts.operator = args.operator.trim();
  }
  if (args.transactions) opts.transactions = args.transactions as MigratorOptions["transactions"];
  if (args["old-transactions"])
    opts.oldTransactions = args["old-transactions"] as MigratorOptions["oldTransactions"];
  const attempts = args["lock-attempts"];
  if (attempts !== undefined) {
    if (!/^[1-9][0-9]?$|^100$/.test(attempts))
      throw new UsageError(`--lock-attempts ${attempts}: expected a whole number from 1 to 100`);
    if (args.retry === false)
      throw new UsageError(`--lock-attempts ${attempts} and --no-retry: give one`);
    opts.lockAttempts = Number(attempts);
  }
  if (args.retry === false) opts.lockAttempts = 1;
  const backup = args["backup-command"];
  if (backup !== undefined) {
    if (backup.trim() === "") throw new UsageError("--backup-command is empty: give a command");
    opts.backupCommand = backup;
  }
  for (const [flag, key] of [
    ["backup-timeout", "backupTimeoutMs"],
    ["connect-timeout", "connectTimeoutMs"],
    ["lock-wait", "lockWaitMs"],
    ["lock-timeout", "lockTimeoutMs"],
    ["statement-timeout", "statementTimeoutMs"],
    ["old-transaction-age", "oldTransactionAgeMs"],
  ] as const) {
    const text = args[flag];
    if (text === undefined) continue;
    const ms = parseDurationMs(text);
    // Timers and PostgreSQL's timeouts hold at most 2^31-1 ms (about 24 days).
    const positive = key === "connectTimeoutMs" || key === "backupTimeoutMs";
    if (ms === undefined || ms > MAX_WAIT_MS || (positive && ms <= 0))
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

/**
 * The URL named explicitly, or undefined for --embedded; anything else is a
 * usage error. Migrations hold a session (their lock, their timeouts), so of
 * the environment's and the config's URLs the direct one wins, as in the
 * server: --database-url, DATABASE_DIRECT_URL, DATABASE_URL, the config's
 * data.database.direct_source, its source.
 */
function databaseUrl(args: Args, conf: Config | undefined): string | undefined {
  const flag = args["database-url"];
  if (flag !== undefined && flag.trim() === "")
    throw new UsageError("--database-url is empty: give a postgres:// URL");
  const database = conf?.data?.database;
  const leftBehind =
    flag === undefined ? directSourceLeftBehind(database?.directSource, process.env) : undefined;
  if (leftBehind) throw new UsageError(`-conf ${args.conf}: ${leftBehind}`);
  const named: [string, string | undefined][] = [
    ["--database-url", flag],
    ["DATABASE_DIRECT_URL", process.env.DATABASE_DIRECT_URL || undefined],
    ["DATABASE_URL", process.env.DATABASE_URL || undefined],
    ["the config's data.database.direct_source", database?.directSource || undefined],
    ["the config's data.database.source", database?.source || undefined],
  ];
  const [from, url] = named.find(([, u]) => u !== undefined) ?? [];
  if (args.embedded) {
    if (url !== undefined)
      throw new UsageError(`--embedded and ${from} both name a database; give one`);
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
