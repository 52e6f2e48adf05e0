import { setImmediate } from "node:timers/promises";
import type pg from "pg";
import { adoptable, readGolangMigrate } from "./adopt.js";
import { analyse, type Script } from "./analyse.js";
import { findBackfills, type Backfill } from "./backfill/declare.js";
import { readBackfills, type BackfillProgress } from "./backfill/progress_record.js";
import { readFailures } from "./failure_record.js";
import { describeInstance, readLiveInstances, type Instance } from "./instances.js";
import { readCatalog } from "./lint/catalog.js";
import { checkConsents, type ConsentCheck } from "./lint/consent.js";
import type { MigratorOptions } from "./options.js";
import { MigrationRefusedError, planSteps, type Command, type Held, type Step } from "./plan.js";
import type { MigrationFile, MigrationSource } from "./source.js";
import { FileLineError, loadSqlParser, rememberingSplit } from "./sql.js";
import { readApplied, stateTableExists, type Applied } from "./state.js";

/** What a command will do: versions to adopt, the steps and their parsed files. */
export interface Prepared {
  adopt: MigrationFile[];
  steps: Step[];
  scripts: Map<Step, Script>;
  /** The consent gate's verdict on each up step's file (see lint/consent.ts). */
  consent: Map<Step, ConsentCheck>;
  /** Migrations with a recorded failure not yet resolved (migrate_failures): a success resolves it. */
  unresolved: Set<string>;
  /** Where a phased `up` stopped, and why (plan.ts). */
  held?: Held;
  /** Steps whose file ends in batched backfills (backfill/declare.ts). */
  backfills: Map<Step, Backfill[]>;
  /** Contract steps and the live instances of an older release they would break (instances.ts). */
  blockers: Map<Step, Instance[]>;
  warnings: string[];
}

// Plans from the recorded state (or, on a database we never touched, what
// golang-migrate recorded), then parses every file that will run: nothing has
// changed if this throws.
export async function prepare(
  client: pg.ClientBase,
  source: MigrationSource,
  command: Command,
  {
    transactions: mode,
    operator,
    thresholds,
    lockTimeoutMs,
  }: Pick<MigratorOptions, "transactions" | "operator" | "thresholds" | "lockTimeoutMs">,
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
  // Who is alive matters to a server's start and to a contract.
  const contracts = files.some((f) => f.phase?.kind === "contract");
  const seen =
    (command.kind === "up" && (command.phase === "start" || contracts)) ||
    (command.kind === "redo" && contracts)
      ? await readLiveInstances(client)
      : [];
  const live = seen ?? [];
  const { steps, held } = planSteps(files, applied, command);
  await refuseAroundBackfills(client, steps);
  const blockers = new Map<Step, Instance[]>();
  for (const s of steps) {
    if (s.direction !== "up" || s.migration.phase?.kind !== "contract") continue;
    const older = live.filter((i) => i.schemaVersion < s.migration.version);
    if (older.length > 0) blockers.set(s, older);
  }
  const warnings = [...source.warnings];
  // A server applies an unmarked file as it always did, even beside an older
  // release (holding it would keep the new instances unready while the old
  // ones wait for them): it says so.
  if (command.kind === "up" && command.phase === "start")
    for (const s of steps.filter((x) => !x.migration.phase)) {
      const older = live.filter((i) => i.schemaVersion < s.migration.version);
      if (older.length > 0)
        warnings.push(
          `${s.name} is not marked -- migrate:phase expand and ${older.length} instance(s) of an older release are alive (${older.map(describeInstance).join("; ")}): applied as an unmarked migration always was; mark a change the previous release cannot survive as expand and contract`,
        );
    }
  if (steps.some((s) => s.direction === "up" && s.migration.phase?.kind === "contract")) {
    if (seen === undefined)
      warnings.push(
        "public.migrate_instances is missing or this role may not read it: a contract cannot tell whether instances of the previous release still run",
      );
    // A release older than heartbeats records none: nothing tells it apart from no release.
    else if (seen.length === 0)
      warnings.push(
        "no server instance has a live heartbeat: a contract cannot see instances of a release that records none (one older than heartbeats); it is applied on the understanding that the previous release has stopped",
      );
  }
  const scripts = new Map<Step, Script>();
  const backfills = new Map<Step, Backfill[]>();
  const consent = new Map<Step, ConsentCheck>();
  if (steps.length === 0)
    return {
      adopt,
      steps,
      scripts,
      backfills,
      consent,
      warnings,
      unresolved: new Set(),
      held,
      blockers,
    };
  const unresolved = new Set((await readFailures(client))?.map((f) => f.name));
  const ups = steps.filter((x) => x.direction === "up");
  // The gate judges against the catalog: read while the files are parsed,
  // the server answering as we work. Its failure is seen where it is awaited.
  const catalog = ups.length > 0 ? readCatalog(client, { lockTimeoutMs }) : undefined;
  catalog?.catch(() => undefined);
  await loadSqlParser();
  // Each file parsed once, though analysed here and linted by the gate.
  const split = rememberingSplit();
  const turn = takingTurns();
  for (const s of steps) {
    const script = analyse(s.sql, s.file, mode, split);
    scripts.set(s, script);
    const fills = findBackfills(script, s.file);
    if (fills.length > 0) backfills.set(s, fills);
    await turn();
  }
  // A broken down file matters only when it runs: a warning at up.
  for (const s of ups.filter((x) => x.migration.down !== undefined)) {
    try {
      analyse(s.migration.down!, s.migration.downPath!, mode, split);
    } catch (err) {
      if (!(err instanceof FileLineError)) throw err;
      warnings.push(`${err.message} (the down migration will fail if it runs)`);
    }
    await turn();
  }
  const checks = catalog
    ? await checkConsents(
        files,
        new Set(ups.map((s) => s.migration.name)),
        await catalog,
        thresholds,
        split,
      )
    : new Map<string, ConsentCheck>();
  for (const s of ups) {
    const c = checks.get(s.migration.name)!;
    consent.set(s, c);
    if (c.used.length > 0) s.consent = { allows: c.used, operator };
    for (const a of c.unused)
      warnings.push(
        `${c.file}:${a.line}: -- migrate:allow ${a.rule} matches no finding of the statement below it`,
      );
  }
  return { adopt, steps, scripts, backfills, consent, warnings, unresolved, held, blockers };
}

/**
 * A revert may not step over a backfill begun and not finished: its file's
 * schema changes are in, unrecorded, and would be skipped when it resumed.
 * Only the first step may be the one it belongs to (a down file's backfill,
 * which this `down` goes on with).
 */
async function refuseAroundBackfills(client: pg.ClientBase, steps: Step[]): Promise<void> {
  const begun = await readBackfills(client);
  // Going on with it is the first step; an up resuming its own up backfill
  // takes that step in order, whatever comes before it.
  const own = (b: BackfillProgress) =>
    b.direction === "up"
      ? steps.every((s) => s.direction === "up")
      : steps[0]?.direction === "down" && steps[0].name === b.migration;
  const other = begun.filter((b) => !own(b));
  if (steps.length === 0 || other.length === 0) return;
  throw new MigrationRefusedError(
    other.map((b) => ({
      kind: "source",
      name: b.migration,
      severity: "error",
      message: `${b.migration}'s backfill (${b.direction}) is begun and not finished: finish it with \`migrate ${b.direction}\` first (or undo its schema changes by hand and delete its row from public.migrate_backfills); nothing was changed`,
    })),
  );
}

/**
 * A pause for pending I/O (a query's reply) every few milliseconds of
 * parsing, so that a query sent before the work proceeds during it.
 */
function takingTurns(everyMs = 4): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < everyMs) return;
    await setImmediate();
    since = performance.now();
  };
}
