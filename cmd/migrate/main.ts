#!/usr/bin/env node
// First, before anything else loads: an older Node is refused in one line.
import "../../internal/pkg/cli/node_version.js";
import { Command, Option } from "commander";
import { flags, runCli } from "../../internal/pkg/cli/cli.js";
import type { Args } from "./options.js";

// Only commander loads up front: the database driver and the SQL parser load
// when a command needs them, so `--help` answers at once.
const commands = () => import("./commands.js");
type Handler = keyof Awaited<ReturnType<typeof commands>>["handlers"];

/** A command's action: its options (and the program's) and its positional, as Args. */
const handle =
  (name: Handler, positional?: "n" | "version" | "name") =>
  async (...params: unknown[]) => {
    const args = flags(params.at(-1) as Command) as Omit<Args, "rehearse"> & {
      rehearse?: string | boolean;
    };
    if (positional) args[positional] = params[0] as string | undefined;
    // `--rehearse` alone is a copy.
    if (args.rehearse === true) args.rehearse = "";
    await (await commands()).handlers[name](args as Args);
  };

const json = process.argv.some((a) => a === "--json" || a === "-json");
const argv = process.argv.slice(2);

/**
 * Exit with `message` on stderr (and as JSON on stdout under --json, with
 * the error's structured `details` when it has them, e.g. the consent gate's).
 */
function fail(message: string, code: number, details?: object): never {
  process.stderr.write(`migrate: ${message}\n`);
  if (json)
    process.stdout.write(
      `${JSON.stringify({ error: message, exitCode: code, ...details }, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}\n`,
    );
  process.exit(code);
}

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

const JSON_OPTION = ["--json", "print the result as JSON"] as const;
const COUNT = ["[n]", "how many migrations (a positive integer)"] as const;

/** The options of the commands that change the schema (up, down, redo). */
const changes = (c: Command) =>
  c
    .argument(...COUNT)
    .option("--dry-run", "print the SQL and the order it would run; change nothing")
    .option(...JSON_OPTION)
    .option(
      "--operator <name>",
      "who runs it, recorded with any consent beside the database user (default: MIGRATE_OPERATOR)",
    )
    .option(
      "--backup-command <command>",
      "run this (sh -c, DATABASE_URL in its environment) before anything is applied; a non-zero exit applies nothing; its last stdout line names the backup",
    )
    .option(
      "--backup-timeout <duration>",
      "stop the backup command after this long, applying nothing (default 1h)",
    )
    .option(
      "--events <file>",
      "write each step of the run as a JSON line to FILE (appended), or to stdout with - (the report then goes to stderr)",
    );

/** --rehearse takes an optional value: `--rehearse` alone is a copy. */
const rehearsal = (c: Command, describe: string) =>
  c
    .option("--rehearse [where]", describe)
    .addOption(
      new Option(
        "--schema-from <how>",
        "how the copy gets the target's schema: pg_dump --schema-only (default when it can dump the server) or the applied files replayed",
      ).choices(["dump", "replay"]),
    );

const program = new Command("migrate")
  .usage("<command> [options]")
  .description(
    "The database, reached directly (not through a pooler): --database-url, DATABASE_DIRECT_URL, DATABASE_URL, or -conf FILE with data.database.direct_source or source; --embedded for the development cluster in ./.data.",
  )
  .option("--conf <file>", "config file (data.database.source and .migration)")
  .option(
    "--database-url <url>",
    "postgres://user@host:port/database; overrides DATABASE_URL and the config",
  )
  .option("--embedded", "the embedded development cluster in ./.data (the one `npm start` uses)")
  .option("--dir <dir>", "migrations folder (default: the project's migrations/)")
  .option(
    "--connect-timeout <duration>",
    "give up connecting after this long (default 10s; a URL's connect_timeout wins)",
  )
  .option("--lock-wait <duration>", "wait this long for another migrator's lock (default 60s)")
  .option("--lock-timeout <duration>", "lock_timeout for migration statements (default 5s)")
  .option(
    "--statement-timeout <duration>",
    "statement_timeout for migration statements (default 10m)",
  )
  .addOption(
    new Option(
      "--transactions <mode>",
      "migration: each migration in one transaction with its record (default); file: files holding their own BEGIN … COMMIT blocks run them as written, as golang-migrate does",
    ).choices(["migration", "file"]),
  )
  .option("--retry", "try again after a lock_timeout refusal (the default)")
  .option(
    "--no-retry",
    "fail at the first lock_timeout refusal instead of trying again (500ms, 1s, 2s … with jitter)",
  )
  .option(
    "--lock-attempts <count>",
    "tries in all after lock_timeout refusals, where a retry is safe (default 5)",
  )
  .option(
    "--old-transaction-age <duration>",
    "before a concurrent index build, name transactions open longer than this (default 1m)",
  )
  .addOption(
    new Option(
      "--old-transactions <what>",
      "wait: name them and build (default); refuse: name them, apply nothing, exit 1",
    ).choices(["wait", "refuse"]),
  )
  .addHelpText(
    "after",
    "\nExit codes: 0 success, 1 failure (nothing or part applied: see the output), 2 usage, 130/143 interrupted by SIGINT/SIGTERM (see the output).",
  );

rehearsal(
  changes(program.command("up").description("apply pending migrations (all, or the next n)"))
    .option("--allow-out-of-order", "apply a pending migration older than an applied one")
    .addOption(
      new Option(
        "--phase <phase>",
        "expand: only migrations marked expand, stopping at the first other; contract: only contracts whose expand is applied (see docs/zero-downtime.md)",
      ).choices(["expand", "contract"]),
    )
    .option(
      "--force",
      "apply a contract even while live instances of an older release need the schema before it (logged with them)",
    )
    .option(
      "--verify",
      "after a successful up, run `migrate verify`'s schema check, and with -conf (the server's config) its data check: exit 1 if either finds a difference",
    ),
  "apply nothing: rehearse on a throwaway copy (=copy, the default) or on the target rolled back (=target), reporting each statement's locks, time and rewrites",
).action(handle("up", "n"));

rehearsal(
  program
    .command("plan")
    .description(
      "up --rehearse: rehearse the pending migrations and report locks, times and rewrites; applies nothing",
    )
    .argument(...COUNT)
    .option(...JSON_OPTION),
  "where: copy (default) or target (transactional files only, rolled back)",
).action(handle("plan", "n"));

changes(
  program
    .command("down")
    .description("revert the last n applied migrations (default 1; --all for every one)"),
)
  .option("--all", "revert every migration")
  .action(handle("down", "n"));

changes(
  program.command("redo").description("revert then re-apply the last n migrations (default 1)"),
).action(handle("redo", "n"));

program
  .command("status")
  .description(
    "every migration: applied or pending, when (UTC), and whether its file still matches",
  )
  .option(...JSON_OPTION)
  .action(handle("status"));

program
  .command("validate")
  .description(
    "fail on an edited or deleted applied file, an out-of-order pending one, or an INVALID index",
  )
  .option(...JSON_OPTION)
  .action(handle("validate"));

program
  .command("verify")
  .description(
    "replay the applied migrations into a throwaway database and compare schemas (--data: check the sealed values and blind indexes instead): exit 0 consistent, 1 not, 2 could not check",
  )
  .option(...JSON_OPTION)
  .option(
    "--data",
    "every sealed value opens under its row and every blind index matches its value (needs -conf with the server's kms section); read only",
  )
  .option(
    "--from <id>",
    "--data: only rows after this id (resume where an interrupted run stopped)",
  )
  .option("--batch-size <rows>", "--data: rows per read (1..10000, default 1000)")
  .action(handle("verify"));

program
  .command("repair")
  .description("record the current files' checksums for applied migrations (accept edits)")
  .action(handle("repair"));

program
  .command("baseline")
  .description(
    "record every migration up to VERSION as applied without running it (a database built by hand)",
  )
  .argument("<version>")
  .action(handle("baseline", "version"));

program
  .command("create")
  .description("write an empty YYYYMMDDHHMMSS_name.up.sql / .down.sql pair (UTC)")
  .argument("<name>")
  .action(handle("create", "name"));

program
  .command("locks")
  .description(
    "who waits for a lock and who holds it: pids, users, statements (truncated), wait and transaction age",
  )
  .option(...JSON_OPTION)
  .action(handle("locks"));

program
  .command("lint")
  .description(
    "flag dangerous DDL (rule, file:line, lock, why, safe rewrite); non-zero exit on errors",
  )
  .option("--json", "print the findings as JSON")
  .option(
    "--sizes",
    "judge pending files against the database named as for other commands (implied by --database-url and --embedded): table existence and sizes",
  )
  .option("--style", "also the schema-style rules (prefer-text-field, prefer-bigint-over-int, …)")
  .option(
    "--error-rows <rows>",
    "with a database: a table of at least this many rows makes a rewrite or scan an error (default 100000)",
  )
  .option(
    "--error-bytes <size>",
    "with a database: likewise for a table of at least this size, e.g. 64MB (the default)",
  )
  .action(handle("lint"));

await runCli(program, argv, (message) => fail(message, 2)).catch(async (err: unknown) => {
  const { exitCodeOf } = await commands();
  fail((err as Error).message, exitCodeOf(err), (err as { details?: object }).details);
});
