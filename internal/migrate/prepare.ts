import type pg from "pg";
import { adoptable, readGolangMigrate } from "./adopt.js";
import { analyse, type Script } from "./analyse.js";
import { readCatalog } from "./lint/catalog.js";
import { checkConsents, type ConsentCheck } from "./lint/consent.js";
import type { MigratorOptions } from "./options.js";
import { planSteps, type Command, type Step } from "./plan.js";
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
  const steps = planSteps(files, applied, command);
  const scripts = new Map<Step, Script>();
  const consent = new Map<Step, ConsentCheck>();
  const warnings = [...source.warnings];
  if (steps.length === 0) return { adopt, steps, scripts, consent, warnings };
  await loadSqlParser();
  // Each file parsed once, though analysed here and linted by the gate.
  const split = rememberingSplit();
  for (const s of steps) scripts.set(s, analyse(s.sql, s.file, mode, split));
  // A broken down file matters only when it runs: a warning at up.
  for (const s of steps.filter((x) => x.direction === "up" && x.migration.down !== undefined)) {
    try {
      analyse(s.migration.down!, s.migration.downPath!, mode, split);
    } catch (err) {
      if (!(err instanceof FileLineError)) throw err;
      warnings.push(`${err.message} (the down migration will fail if it runs)`);
    }
  }
  const ups = steps.filter((x) => x.direction === "up");
  const checks =
    ups.length === 0
      ? new Map<string, ConsentCheck>()
      : await checkConsents(
          files,
          new Set(ups.map((s) => s.migration.name)),
          await readCatalog(client, { lockTimeoutMs }),
          thresholds,
          split,
        );
  for (const s of ups) {
    const c = checks.get(s.migration.name)!;
    consent.set(s, c);
    if (c.used.length > 0) s.consent = { allows: c.used, operator };
    for (const a of c.unused)
      warnings.push(
        `${c.file}:${a.line}: -- migrate:allow ${a.rule} matches no finding of the statement below it`,
      );
  }
  return { adopt, steps, scripts, consent, warnings };
}
