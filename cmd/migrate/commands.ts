import { DatabaseUrlError } from "../../internal/migrate/connect.js";
import { status } from "../../internal/migrate/inspect.js";
import type { Command } from "../../internal/migrate/runner.js";
import type { Thresholds } from "../../internal/migrate/lint/severity.js";
import { migrationsDir, UsageError, withDatabase, type Args } from "./options.js";
import * as print from "./print.js";
import { signalExitCode, untilSignalled } from "./signals.js";

// Heavy modules (the config schema, the SQL parser, the logger) load only in
// the commands that use them: `status` and `--help` stay quick.
const runner = () => import("../../internal/migrate/runner.js");
const bookkeeping = () => import("../../internal/migrate/bookkeeping.js");

/** 2 for usage and configuration, 1 for everything that failed or was refused. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof InterruptedError || err instanceof UncheckedError) return err.exitCode;
  const usage =
    err instanceof UsageError ||
    err instanceof DatabaseUrlError ||
    (err instanceof Error && err.name === "ConfigError") ||
    (err instanceof Error && err.name === "RehearsalUnavailableError");
  return usage ? 2 : 1;
}

const stdout = (text: string) => process.stdout.write(text);
const stderr = (text: string) => process.stderr.write(text);
const out = stdout;

export const handlers = {
  up: async (args: Args) => {
    if (args.verify && (args.rehearse !== undefined || args["dry-run"]))
      throw new UsageError("--verify checks what up applied: not with --dry-run or --rehearse");
    return args.rehearse !== undefined
      ? looking(async () =>
          (await import("./rehearse.js")).rehearseCommand(args, count(args.n, "up")),
        )()
      : change(args, {
          kind: "up",
          count: count(args.n, "up"),
          allowOutOfOrder: args["allow-out-of-order"],
          ...(args.phase ? { phase: args.phase as "expand" | "contract" } : {}),
        });
  },
  plan: looking(async (args: Args) =>
    (await import("./rehearse.js")).rehearseCommand(args, count(args.n, "plan")),
  ),
  down: (args: Args) => {
    if (args.all && args.n !== undefined)
      throw new UsageError(`down ${args.n} --all: give a count or --all, not both`);
    return change(args, { kind: "down", count: args.all ? "all" : (count(args.n, "down") ?? 1) });
  },
  redo: (args: Args) => change(args, { kind: "redo", count: count(args.n, "redo") ?? 1 }),

  status: looking((args: Args) =>
    withDatabase(
      args,
      async (opts) => {
        const s = await status(opts);
        if (args.json)
          print.json({
            migrations: s.entries,
            pending: s.pending.length,
            midChange: s.midChange,
            instances: s.instances ?? null,
            backfilling: s.backfilling,
            problems: s.problems,
          });
        else print.status(out, s.entries, s.problems, s);
        // A script reading only the exit code must not miss an `error:` line.
        if (s.problems.some((p) => p.severity === "error")) process.exitCode = 1;
      },
      { logs: false },
    ),
  ),

  validate: looking((args: Args) =>
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
  ),

  repair: (args: Args) =>
    withDatabase(args, async (opts) => {
      const fixed = await (await bookkeeping()).repair(opts);
      out(fixed.length ? fixed.map((n) => `recorded ${n}\n`).join("") : "nothing to repair\n");
    }),

  baseline: (args: Args) => {
    const version = args.version ?? "";
    if (!/^[0-9]{1,19}$/.test(version))
      throw new UsageError(`baseline ${version}: expected a migration version (its digits)`);
    return withDatabase(args, async (opts) => {
      const recorded = await (await bookkeeping()).baseline(opts, BigInt(version));
      out(recorded.map((n) => `recorded ${n}\n`).join(""));
    });
  },

  create: async (args: Args) => {
    if (args.expand !== undefined) return createExpand(args);
    const { EXPAND_OPTIONS } = await import("../../internal/migrate/expand/kind.js");
    const misplaced = EXPAND_OPTIONS.find((o) => args[o] !== undefined);
    if (misplaced)
      throw new UsageError(`--${misplaced} goes with --expand KIND: nothing was written`);
    const { createMigration } = await import("../../internal/migrate/create.js");
    const files = await createMigration(await migrationsDir(args), args.name ?? "");
    out(`${files.up}\n${files.down}\n`);
  },

  verify: looking(async (args: Args) => {
    if (args.data) return (await import("./verify_data.js")).verifyDataCommand(args);
    if (args.from !== undefined || args["batch-size"] !== undefined)
      throw new UsageError("--from and --batch-size go with --data");
    const { verifyCommand } = await import("./verify.js");
    return interruptible((stop) => verifyCommand(args, stop));
  }),

  // Exit 0 whatever it finds: it reports, it does not judge; 2 when it could not look.
  locks: looking((args: Args) =>
    withDatabase(
      args,
      async (opts) => {
        const { readLockWaits } = await import("../../internal/migrate/blockers.js");
        const waits = await readLockWaits(opts).catch((err: unknown) => {
          throw new Error(`could not read the lock waits: ${(err as Error).message}`);
        });
        if (args.json) print.json({ waits });
        else print.lockWaits(out, waits);
      },
      { logs: false },
    ),
  ),

  lint: looking(async (args: Args) => {
    const { blocking, DEFAULT_THRESHOLDS, lintMigrations } =
      await import("../../internal/migrate/lint/lint.js");
    lintThresholds(args, DEFAULT_THRESHOLDS); // a bad flag exits 2 before anything connects
    const useDb = args.sizes || args["database-url"] !== undefined || args.embedded;
    let result: Awaited<ReturnType<typeof lintMigrations>> | undefined;
    if (useDb)
      await withDatabase(
        args,
        async (opts) => {
          const thresholds = lintThresholds(args, opts.thresholds);
          result = await lintMigrations(opts.dir, { ...opts, thresholds }, { style: args.style });
        },
        { logs: false },
      );
    else result = await lintMigrations(await migrationsDir(args), undefined, { style: args.style });
    const { findings, applied } = result!;
    const errors = blocking(findings).length;
    if (args.json) print.json({ findings, errors, appliedNotLinted: applied });
    else print.findings(out, findings, applied);
    if (errors > 0) process.exitCode = 1;
  }),
};

/** `create NAME --expand KIND …`: every refusal is a usage error (exit 2), nothing written. */
async function createExpand(args: Args): Promise<void> {
  const [{ createExpandMigration, ExpandOptionError }, { MigrationNameError }, { EXPAND_OPTIONS }] =
    await Promise.all([
      import("../../internal/migrate/expand/generate.js"),
      import("../../internal/migrate/create.js"),
      import("../../internal/migrate/expand/kind.js"),
    ]);
  const values = Object.fromEntries(EXPAND_OPTIONS.map((o) => [o, args[o]]));
  try {
    const files = await createExpandMigration({
      dir: await migrationsDir(args),
      name: args.name ?? "",
      kind: args.expand ?? "",
      values,
    });
    out(`${files.expandUp}\n${files.expandDown}\n${files.contractUp}\n${files.contractDown}\n`);
  } catch (err) {
    if (err instanceof ExpandOptionError || err instanceof MigrationNameError)
      throw new UsageError(err.message);
    throw err;
  }
}

/**
 * A command that only looks (status, validate, lint, locks, plan, a dry run
 * or rehearsal): whatever stops it from looking exits 2, "could not check",
 * so that 1 always means it looked and found something.
 */
function looking<A extends unknown[]>(fn: (...a: A) => Promise<void>) {
  return (...a: A) => fn(...a).catch((err: unknown) => Promise.reject(couldNotCheck(err)));
}

// What a look finds wrong in the files or the record (exit 1, as `up` would
// refuse them), as against what kept it from looking.
const FINDINGS = new Set([
  "MigrationRefusedError",
  "AdoptionRefusedError",
  "MigrationSourceError",
  "FileLineError",
  "SqlSyntaxError",
  "ScriptRefusedError",
  "ConsentRequiredError",
  "OldTransactionsError",
  "ContractWaitError",
]);

function couldNotCheck(err: unknown): unknown {
  if (err instanceof InterruptedError || exitCodeOf(err) === 2) return err;
  if (err instanceof Error && FINDINGS.has(err.name)) return err;
  return new UncheckedError((err as Error).message, 2);
}

// --error-rows N, --error-bytes SIZE (64MB, 1GB, 500kB, or bytes); each
// given one wins over the configured `fallback`.
function lintThresholds(args: Args, fallback: Thresholds): Thresholds {
  const rows = args["error-rows"];
  const bytes = args["error-bytes"];
  if (rows !== undefined && !/^[0-9]{1,15}$/.test(rows))
    throw new UsageError(`--error-rows ${rows}: expected a number of rows`);
  const size = bytes === undefined ? undefined : /^([0-9]{1,15})\s*(B|kB|MB|GB|TB)?$/i.exec(bytes);
  if (bytes !== undefined && !size)
    throw new UsageError(`--error-bytes ${bytes}: expected a size such as 64MB, 1GB or 500kB`);
  const unit = { b: 1, kb: 2 ** 10, mb: 2 ** 20, gb: 2 ** 30, tb: 2 ** 40 }[
    (size?.[2] ?? "b").toLowerCase() as "b"
  ];
  return {
    errorRows: rows === undefined ? fallback.errorRows : Number(rows),
    errorBytes: size ? Number(size[1]) * unit : fallback.errorBytes,
  };
}

/** `up`, `down`, `redo`: the plan with --dry-run, else the run, both printed. */
function change(args: Args, command: Command): Promise<void> {
  // SIGINT/SIGTERM stop the run between steps, cancelling the statement in
  // flight, and the report still says what was applied.
  return interruptible(
    (stop) => changeUntil(args, command, stop),
    (err) => (args["dry-run"] ? couldNotCheck(err) : err),
  );
}

/**
 * Runs `fn` under SIGINT/SIGTERM (untilSignalled); an error it ends with
 * after a signal exits 130/143 (InterruptedError), any other goes through
 * `otherwise`.
 */
async function interruptible(
  fn: (stop: AbortSignal) => Promise<void>,
  otherwise: (err: unknown) => unknown = (err) => err,
): Promise<void> {
  let stopped: AbortSignal | undefined;
  try {
    await untilSignalled((stop) => {
      stopped = stop;
      return fn(stop);
    });
  } catch (err) {
    if (!stopped?.aborted) throw otherwise(err);
    throw new InterruptedError(
      (err as Error).message,
      signalExitCode(stopped.reason as NodeJS.Signals),
    );
  }
}

/** change() under `stop`: the run stops between steps when it aborts. */
async function changeUntil(args: Args, command: Command, stop: AbortSignal): Promise<void> {
  if (args["dry-run"] && args.events !== undefined)
    throw new UsageError("--events and --dry-run: a dry run has no events; give one");
  const events = (await import("./events.js")).eventSink(args.events, args.json === true);
  // With the events on stdout, the report goes to stderr.
  const out = args.events === "-" ? stderr : stdout;
  await withDatabase(args, async (opts) => {
    const terminal = !args.json && args.events !== "-" && process.stderr.isTTY === true;
    opts.events = (await import("./backfill_bar.js")).withBackfillBar(events, terminal);
    opts.force = args.force === true;
    const { plan, run } = await runner();
    if (args["dry-run"]) {
      const p = await plan(opts, command, stop);
      print.warnings(p.warnings);
      if (args.json)
        print.json({ dryRun: true, ...p, steps: p.steps.map(({ migration: _, ...s }) => s) });
      else print.plan(out, p);
      // `up` would refuse: a dry run in CI fails the same way.
      if (p.steps.some((s) => (s.gate && !s.gate.ok) || (s.waitsFor && !opts.force)))
        process.exitCode = 1;
      return;
    }
    const report = await run(opts, command, stop);
    print.warnings(report.warnings);
    // Said before a verification: a second signal during it exits at once.
    if (!args.json) print.report(out, report);
    // up --verify: only after an up that finished; what it finds or could not check sets the exit.
    const check = await import("./verify.js");
    const verify =
      !args.verify || report.failed || report.interrupted
        ? undefined
        : stop.aborted
          ? check.notRun(stop)
          : await check.verifyAfterUp(args, opts, stop);
    if (args.json)
      print.json(verify ? { ...report, verify: verify.schema, verifyData: verify.data } : report);
    if (verify && !args.json) await check.writeAfterUp(out, verify);
    if (report.failed) process.exitCode = 1;
    if (verify) process.exitCode = check.afterUpExitCode(verify) || process.exitCode;
    if (stop.aborted && verify) process.exitCode = signalExitCode(stop.reason as NodeJS.Signals);
    // A step that failed on its own as the signal came is a failure (exit 1).
    if (report.interrupted && (!report.failed || report.failed.stopped))
      process.exitCode = signalExitCode(report.interrupted.signal as NodeJS.Signals);
  });
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

/** A command that only looks could not: exit 2, as for usage. */
class UncheckedError extends Error {
  override name = "UncheckedError";
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

// N: a positive integer, or absent. `0`, `-1`, `abc`, `all`, `1.5` are refused
// here: node-pg-migrate's CLI reads a count of 0 as "everything".
function count(n: string | undefined, command: string): number | undefined {
  if (n === undefined) return undefined;
  if (!/^[1-9][0-9]{0,8}$/.test(n)) {
    const all = command === "down" ? "; to revert every migration, say `down --all`" : "";
    throw new UsageError(`${command} ${JSON.stringify(n)}: N must be a positive integer${all}`);
  }
  return Number(n);
}
