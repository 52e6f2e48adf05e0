#!/usr/bin/env node
import yargs, { type Argv } from "yargs";
import { hideBin } from "yargs/helpers";
import type { Args } from "./options.js";

// Only yargs loads up front: the database driver and the SQL parser load
// when a command needs them, so `--help` answers at once.
const commands = () => import("./commands.js");
type Handler = keyof Awaited<ReturnType<typeof commands>>["handlers"];
const handle = (name: Handler) => async (args: Args) => (await commands()).handlers[name](args);

const changes = (y: Argv) =>
  y
    .positional("n", { type: "string", describe: "how many migrations (a positive integer)" })
    .option("dry-run", {
      type: "boolean",
      describe: "print the SQL and the order it would run; change nothing",
    })
    .option("json", { type: "boolean", describe: "print the result as JSON" })
    .option("operator", {
      type: "string",
      describe:
        "who runs it, recorded with any consent beside the database user (default: MIGRATE_OPERATOR)",
    })
    .option("backup-command", {
      type: "string",
      describe:
        "run this (sh -c, DATABASE_URL in its environment) before anything is applied; a non-zero exit applies nothing; its last stdout line names the backup",
    })
    .option("backup-timeout", {
      type: "string",
      describe: "stop the backup command after this long, applying nothing (default 1h)",
    })
    .option("events", {
      type: "string",
      describe:
        "write each step of the run as a JSON line to FILE (appended), or to stdout with - (the report then goes to stderr)",
    });

// --rehearse takes an optional value: `--rehearse` alone is a copy.
const rehearsal = (y: Argv, describe: string) =>
  y
    .option("rehearse", {
      type: "string",
      describe,
    })
    .option("schema-from", {
      type: "string",
      choices: ["dump", "replay"],
      describe:
        "how the copy gets the target's schema: pg_dump --schema-only (default when it can dump the server) or the applied files replayed",
    });

const argv = joinStdoutValue(hideBin(process.argv), "--events");

/** yargs reads a lone `-` as a positional: `--events -` becomes `--events=-` (stdout). */
function joinStdoutValue(args: string[], flag: string): string[] {
  const i = args.findIndex((a, j) => a === flag && args[j + 1] === "-");
  return i < 0 ? args : [...args.slice(0, i), `${flag}=-`, ...args.slice(i + 2)];
}
const json = argv.includes("--json");

/**
 * Exit with `message` on stderr (and as JSON on stdout under --json, with
 * the error's structured `details` when it has them, e.g. the consent gate's).
 */
function fail(message: string, code: number, details?: object): never {
  process.stderr.write(`migrate: ${message}\n`);
  if (json)
    process.stdout.write(`${JSON.stringify({ error: message, exitCode: code, ...details })}\n`);
  process.exit(code);
}

// yargs folds a repeated boolean into one value; docs/migrations.md promises exit 2.
const switches = [
  "json",
  "dry-run",
  "embedded",
  "all",
  "allow-out-of-order",
  "retry",
  "sizes",
  "style",
  "verify",
  "data",
];
const given = argv
  .slice(0, argv.includes("--") ? argv.indexOf("--") : argv.length)
  .map((a) => /^--?(?:no-)?([^=]+)/.exec(a)?.[1]?.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`))
  .filter((name) => name !== undefined && switches.includes(name));
const twice = given.find((name, i) => given.indexOf(name) !== i);
if (twice !== undefined) fail(`--${twice} given more than once`, 2);

// `down -1` would otherwise read as an unknown flag "-1".
// After an option (`--backup-timeout -1s`) it is that option's value.
const negative = argv.findIndex((a) => /^-[0-9]/.test(a));
if (negative >= 0) {
  const option = /^--?[^=]+$/.exec(argv[negative - 1] ?? "")?.[0];
  fail(
    option
      ? `${option} ${argv[negative]}: negative; expected a positive value`
      : `${argv[negative]}: expected a positive integer`,
    2,
  );
}

await yargs(argv)
  .scriptName("migrate")
  .usage(
    "$0 <command> [options]\n\nThe database: --database-url, DATABASE_URL, or -conf FILE with data.database.source; --embedded for the development cluster in ./.data.",
  )
  // Go-style single-dash long flags, as Kratos' `-conf`.
  .parserConfiguration({ "short-option-groups": false, "populate--": true })
  // Nothing may be silently dropped: `down -- 2`, an option given twice.
  .check((args) => {
    const rest = (args["--"] as unknown[] | undefined) ?? [];
    if (rest.length > 0) throw new Error(`unexpected arguments after --: ${rest.join(" ")}`);
    const repeated = Object.entries(args).find(
      ([k, v]) => k !== "_" && k !== "--" && Array.isArray(v),
    );
    if (repeated) throw new Error(`--${repeated[0]} given more than once`);
    return true;
  })
  .option("conf", { type: "string", describe: "config file (data.database.source and .migration)" })
  .option("database-url", {
    type: "string",
    describe: "postgres://user@host:port/database; overrides DATABASE_URL and the config",
  })
  .option("embedded", {
    type: "boolean",
    describe: "the embedded development cluster in ./.data (the one `npm start` uses)",
  })
  .option("dir", {
    type: "string",
    describe: "migrations folder (default: the project's migrations/)",
  })
  .option("connect-timeout", {
    type: "string",
    describe: "give up connecting after this long (default 10s; a URL's connect_timeout wins)",
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
  .option("transactions", {
    type: "string",
    choices: ["migration", "file"],
    describe:
      "migration: each migration in one transaction with its record (default); file: files holding their own BEGIN … COMMIT blocks run them as written, as golang-migrate does",
  })
  .option("retry", {
    type: "boolean",
    describe:
      "--no-retry: fail at the first lock_timeout refusal instead of trying again (500ms, 1s, 2s … with jitter)",
  })
  .option("lock-attempts", {
    type: "string",
    describe: "tries in all after lock_timeout refusals, where a retry is safe (default 5)",
  })
  .option("old-transaction-age", {
    type: "string",
    describe:
      "before a concurrent index build, name transactions open longer than this (default 1m)",
  })
  .option("old-transactions", {
    type: "string",
    choices: ["wait", "refuse"],
    describe: "wait: name them and build (default); refuse: name them, apply nothing, exit 1",
  })
  .command(
    "up [n]",
    "apply pending migrations (all, or the next n)",
    (y) =>
      rehearsal(
        changes(y)
          .option("allow-out-of-order", {
            type: "boolean",
            describe: "apply a pending migration older than an applied one",
          })
          .option("verify", {
            type: "boolean",
            describe:
              "after a successful up, run `migrate verify`'s schema check: exit 1 if the schema is not what the applied migrations make",
          }),
        "apply nothing: rehearse on a throwaway copy (=copy, the default) or on the target rolled back (=target), reporting each statement's locks, time and rewrites",
      ),
    handle("up"),
  )
  .command(
    "plan [n]",
    "up --rehearse: rehearse the pending migrations and report locks, times and rewrites; applies nothing",
    (y) =>
      rehearsal(
        y
          .positional("n", { type: "string", describe: "how many migrations (a positive integer)" })
          .option("json", { type: "boolean", describe: "print the result as JSON" }),
        "where: copy (default) or target (transactional files only, rolled back)",
      ),
    handle("plan"),
  )
  .command(
    "down [n]",
    "revert the last n applied migrations (default 1; --all for every one)",
    (y) => changes(y).option("all", { type: "boolean", describe: "revert every migration" }),
    handle("down"),
  )
  .command(
    "redo [n]",
    "revert then re-apply the last n migrations (default 1)",
    changes,
    handle("redo"),
  )
  .command(
    "status",
    "every migration: applied or pending, when (UTC), and whether its file still matches",
    (y) => y.option("json", { type: "boolean", describe: "machine-readable output" }),
    handle("status"),
  )
  .command(
    "validate",
    "fail on an edited or deleted applied file, an out-of-order pending one, or an INVALID index",
    (y) => y.option("json", { type: "boolean", describe: "machine-readable output" }),
    handle("validate"),
  )
  .command(
    "verify",
    "replay the applied migrations into a throwaway database and compare schemas (--data: check the sealed values and blind indexes instead): exit 0 consistent, 1 not, 2 could not check",
    (y) =>
      y
        .option("json", { type: "boolean", describe: "machine-readable output" })
        .option("data", {
          type: "boolean",
          describe:
            "every sealed value opens under its row and every blind index matches its value (needs -conf with the server's kms section); read only",
        })
        .option("from", {
          type: "string",
          describe: "--data: only rows after this id (resume where an interrupted run stopped)",
        })
        .option("batch-size", {
          type: "string",
          describe: "--data: rows per read (1..10000, default 1000)",
        }),
    handle("verify"),
  )
  .command(
    "repair",
    "record the current files' checksums for applied migrations (accept edits)",
    () => undefined,
    handle("repair"),
  )
  .command(
    "baseline <version>",
    "record every migration up to VERSION as applied without running it (a database built by hand)",
    (y) => y.positional("version", { type: "string", demandOption: true }),
    handle("baseline"),
  )
  .command(
    "create <name>",
    "write an empty YYYYMMDDHHMMSS_name.up.sql / .down.sql pair (UTC)",
    (y) => y.positional("name", { type: "string", demandOption: true }),
    handle("create"),
  )
  .command(
    "locks",
    "who waits for a lock and who holds it: pids, users, statements (truncated), wait and transaction age",
    (y) => y.option("json", { type: "boolean", describe: "machine-readable output" }),
    handle("locks"),
  )
  .command(
    "lint",
    "flag dangerous DDL (rule, file:line, lock, why, safe rewrite); non-zero exit on errors",
    (y) =>
      y
        .option("json", { type: "boolean", describe: "print the findings as JSON" })
        .option("sizes", {
          type: "boolean",
          describe:
            "judge pending files against the database named as for other commands (implied by --database-url and --embedded): table existence and sizes",
        })
        .option("style", {
          type: "boolean",
          describe: "also the schema-style rules (prefer-text-field, prefer-bigint-over-int, …)",
        })
        .option("error-rows", {
          type: "string",
          describe:
            "with a database: a table of at least this many rows makes a rewrite or scan an error (default 100000)",
        })
        .option("error-bytes", {
          type: "string",
          describe:
            "with a database: likewise for a table of at least this size, e.g. 64MB (the default)",
        }),
    handle("lint"),
  )
  .demandCommand(1, "name a command")
  .strict()
  .version(false)
  .epilogue(
    "Exit codes: 0 success, 1 failure (nothing or part applied: see the output), 2 usage, 130/143 interrupted by SIGINT/SIGTERM (see the output).",
  )
  .fail((msg, err) => {
    // Usage problems (and .check's) come here; a handler's errors go on to
    // the catch below, which tells usage from failure.
    if (err && !msg) throw err;
    fail(msg ?? err?.message ?? "usage", 2);
  })
  .parseAsync()
  .catch(async (err: unknown) => {
    const { exitCodeOf } = await commands();
    fail((err as Error).message, exitCodeOf(err), (err as { details?: object }).details);
  });
