#!/usr/bin/env node
import yargs, { type Argv } from "yargs";
import { hideBin } from "yargs/helpers";
import { ConfigError, loadConfig, type Config } from "../../internal/conf/load.js";
import { parseDurationMs } from "../../internal/conf/duration.js";
import { startDatabase } from "../../internal/data/data.js";
import { createMigration } from "../../internal/data/migrate/create.js";
import { lintMigrations } from "../../internal/data/migrate/lint.js";
import { migratorOptions } from "../../internal/data/migrate/options.js";
import {
  down,
  redo,
  repair,
  status,
  up,
  type MigratorOptions,
  type Step,
  type StepResult,
} from "../../internal/data/migrate/runner.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { printApplied, printFindings, printPlan, printProblems, printStatus } from "./print.js";

// Exit codes: 0 success, 1 failure (a migration failed, was refused, the lock
// wait ran out, lint or validate found errors), 2 usage or configuration.
class UsageError extends Error {}

const out = (text: string) => process.stdout.write(text);

interface Args {
  conf?: string;
  "database-url"?: string;
  dir?: string;
  "lock-wait"?: string;
  "lock-timeout"?: string;
  "statement-timeout"?: string;
  "dry-run"?: boolean;
  json?: boolean;
  "allow-out-of-order"?: boolean;
  n?: number;
  name?: string;
}

/**
 * The config file when -conf names one (the server's, so a deploy script and
 * the server agree), else none; --database-url beats DATABASE_URL beats the
 * file; nothing at all means the embedded PostgreSQL, as for the server.
 */
function settings(args: Args): { conf: Config | undefined; source: string } {
  const conf = args.conf ? loadConfig(args.conf) : undefined;
  const source =
    args["database-url"] ?? process.env.DATABASE_URL ?? conf?.data?.database?.source ?? "";
  return { conf, source };
}

function migrationsDir(args: Args): string {
  return args.dir ?? migratorOptions(settings(args).conf?.data?.database, "", silent).dir;
}

const silent = createLogger({ level: "silent", format: "json" });

async function withMigrator<T>(args: Args, fn: (opts: MigratorOptions) => Promise<T>): Promise<T> {
  const { conf, source } = settings(args);
  const log = createLogger({
    level: conf?.log?.level ?? "info",
    format: "json",
    destination: process.stderr,
  });
  const db = await startDatabase(source, log);
  try {
    const opts = migratorOptions(conf?.data?.database, db.url, log);
    if (args.dir) opts.dir = args.dir;
    for (const [flag, key] of [
      ["lock-wait", "lockWaitMs"],
      ["lock-timeout", "lockTimeoutMs"],
      ["statement-timeout", "statementTimeoutMs"],
    ] as const) {
      const text = args[flag];
      if (text === undefined) continue;
      const ms = parseDurationMs(text);
      if (ms === undefined)
        throw new UsageError(`--${flag} ${text}: expected a duration such as 30s or 2m`);
      opts[key] = ms;
    }
    return await fn(opts);
  } finally {
    await db.embedded?.stop();
  }
}

function report(args: Args, result: StepResult[] | Step[]): void {
  if (args["dry-run"]) printPlan(out, result);
  else printApplied(out, result as StepResult[]);
}

const common = (y: Argv) =>
  y
    .option("dry-run", {
      type: "boolean",
      describe: "print the SQL and the order it would run; change nothing",
    })
    .positional("n", { type: "number", describe: "how many migrations" });

await yargs(hideBin(process.argv))
  .scriptName("migrate")
  .usage("$0 <command> [options]")
  // Go-style single-dash long flags, as Kratos' `-conf`.
  .parserConfiguration({ "short-option-groups": false })
  .option("conf", { type: "string", describe: "config file (data.database.source and .migration)" })
  .option("database-url", {
    type: "string",
    describe: "postgres:// URL; overrides DATABASE_URL and the config",
  })
  .option("dir", {
    type: "string",
    describe: "migrations folder (default: the project's migrations/)",
  })
  .option("lock-wait", {
    type: "string",
    describe: "wait this long for another migrator's lock (default 60s)",
  })
  .option("lock-timeout", {
    type: "string",
    describe: "lock_timeout for migration statements (default 5s)",
  })
  .option("statement-timeout", {
    type: "string",
    describe: "statement_timeout for migration statements (default 10m)",
  })
  .command(
    "up [n]",
    "apply pending migrations (all, or the next n)",
    (y) =>
      common(y).option("allow-out-of-order", {
        type: "boolean",
        describe: "apply a pending migration older than an applied one",
      }),
    (args) =>
      withMigrator(args, async (o) =>
        report(
          args,
          await up(o, {
            count: args.n,
            dryRun: args["dry-run"],
            allowOutOfOrder: args["allow-out-of-order"],
          }),
        ),
      ),
  )
  .command("down [n]", "revert the last n applied migrations (default 1)", common, (args) =>
    withMigrator(args, async (o) =>
      report(args, await down(o, { count: args.n ?? 1, dryRun: args["dry-run"] })),
    ),
  )
  .command("redo [n]", "revert then re-apply the last n migrations (default 1)", common, (args) =>
    withMigrator(args, async (o) =>
      report(args, await redo(o, { count: args.n ?? 1, dryRun: args["dry-run"] })),
    ),
  )
  .command(
    "status",
    "every migration: applied or pending, when, and whether its file still matches",
    (y) => y.option("json", { type: "boolean", describe: "machine-readable output" }),
    (args) =>
      withMigrator(args, async (o) => {
        const { entries, pending, problems } = await status(o);
        if (args.json)
          out(
            `${JSON.stringify({ migrations: entries, pending: pending.length, problems }, null, 2)}\n`,
          );
        else printStatus(out, entries, problems);
      }),
  )
  .command(
    "validate",
    "fail when an applied file was edited or deleted, or a pending one sorts before an applied one",
    () => undefined,
    (args) =>
      withMigrator(args, async (o) => {
        const { problems } = await status(o);
        printProblems(out, problems);
        if (problems.some((p) => p.severity === "error")) process.exitCode = 1;
        else out("ok\n");
      }),
  )
  .command(
    "repair",
    "record the current files' checksums for applied migrations (accept edits)",
    () => undefined,
    (args) =>
      withMigrator(args, async (o) => {
        const fixed = await repair(o);
        out(fixed.length ? fixed.map((n) => `recorded ${n}\n`).join("") : "nothing to repair\n");
      }),
  )
  .command(
    "create <name>",
    "write an empty YYYYMMDDHHMMSS_name.up.sql / .down.sql pair (UTC)",
    (y) => y.positional("name", { type: "string", demandOption: true }),
    async (args) => {
      const files = await createMigration(migrationsDir(args), args.name);
      out(`${files.up}\n${files.down}\n`);
    },
  )
  .command(
    "lint",
    "flag dangerous DDL (rule, file, line); non-zero exit on errors",
    () => undefined,
    async (args) => {
      const findings = await lintMigrations(migrationsDir(args));
      printFindings(out, findings);
      if (findings.some((f) => f.severity === "error")) process.exitCode = 1;
    },
  )
  .demandCommand(1, "name a command")
  .strict()
  .version(false)
  .fail((msg, err) => {
    if (err && !(err instanceof UsageError) && !(err instanceof ConfigError)) {
      process.stderr.write(`migrate: ${err.message}\n`);
      process.exit(1);
    }
    process.stderr.write(`migrate: ${msg ?? err?.message}\n`);
    process.exit(2);
  })
  .parseAsync();
