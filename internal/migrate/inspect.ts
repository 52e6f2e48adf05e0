import type pg from "pg";
import { adoptable, readGolangMigrate, AdoptionRefusedError } from "./adopt.js";
import { readBackups } from "./backup.js";
import { connect, disconnect } from "./connect.js";
import { readFailures, standing } from "./failure_record.js";
import { readConsents } from "./consent_record.js";
import { invalidIndexes } from "./indexes.js";
import { readLiveInstances } from "./instances.js";
import type { MigratorOptions } from "./options.js";
import { readMigrations, type MigrationSource } from "./source.js";
import { compare, readApplied, stateTableExists, type Problem } from "./state.js";

/** Every migration's state (with the consent and backup it was applied under, and a failure that still stands) and the problems found; reads only, takes no lock. */
export async function status(
  opts: Pick<MigratorOptions, "databaseUrl" | "dir" | "connectTimeoutMs" | "statementTimeoutMs">,
) {
  const source = readMigrations(opts.dir);
  const client = await connect(opts.databaseUrl, opts.connectTimeoutMs, {
    // Reading only: bounded even with statement_timeout off (unlike session.replyTimeoutMs).
    replyTimeoutMs: opts.statementTimeoutMs + opts.connectTimeoutMs,
  });
  try {
    const result = await inspect(client, source);
    const consents = await readConsents(client);
    const backups = await readBackups(client);
    const applied = new Set(result.entries.filter((e) => e.state === "applied").map((e) => e.name));
    const failed = new Map(
      standing((await readFailures(client)) ?? [], applied).map((f) => [f.name, f]),
    );
    for (const f of failed.values())
      if (!result.entries.some((e) => e.name === f.name))
        result.problems.push({
          kind: "source",
          name: f.name,
          severity: "warning",
          message: `${f.name} is not in this folder, and its ${f.direction} failed at ${f.failedAt.toISOString()} (${f.at}${f.sqlstate ? `, SQLSTATE ${f.sqlstate}` : ""}): a newer release's?`,
        });
    const files = new Map(source.migrations.map((m) => [m.name, m]));
    for (const e of result.entries) {
      const phase = files.get(e.name)?.phase?.kind;
      if (phase) e.phase = phase;
      const f = failed.get(e.name);
      if (f)
        e.lastFailure = {
          direction: f.direction,
          failedAt: f.failedAt,
          at: f.at,
          sqlstate: f.sqlstate,
        };
      if (e.state !== "applied") continue;
      const given = consents.get(e.name);
      if (given) e.consents = given;
      // The newest backup that preceded the run which applied it.
      const b = backups.find((b) => b.steps.includes(e.name) && (!e.runOn || b.takenAt <= e.runOn));
      if (b) e.backup = { location: b.location, takenAt: b.takenAt };
    }
    return {
      ...result,
      midChange: midChange(source, applied),
      instances: await readLiveInstances(client),
    };
  } finally {
    await disconnect(client, opts.connectTimeoutMs);
  }
}

/** Expands applied whose contract is not: the database serves both releases' schemas. */
function midChange(source: MigrationSource, applied: ReadonlySet<string>) {
  return source.migrations.flatMap((c) => {
    if (c.phase?.kind !== "contract" || applied.has(c.name)) return [];
    const expand = source.migrations.find(
      (m) => m.version === (c.phase as { expands: bigint }).expands,
    );
    return expand && applied.has(expand.name) ? [{ expand: expand.name, contract: c.name }] : [];
  });
}

/**
 * The schema's state against the files: `compare`, plus INVALID indexes
 * (unless `indexes: false`) and a golang-migrate state that `up` would adopt
 * (or refuse).
 */
export async function inspect(
  client: pg.ClientBase,
  source: MigrationSource,
  { indexes = true }: { indexes?: boolean } = {},
) {
  const applied = await readApplied(client);
  const result = compare(source.migrations, applied);
  const problems: Problem[] = [
    ...source.warnings.map((message): Problem => ({
      kind: "source",
      name: "",
      severity: "warning",
      message,
    })),
    ...result.problems,
  ];
  for (const index of indexes ? await invalidIndexes(client) : []) {
    problems.push({
      kind: "invalid-index",
      name: index.name,
      severity: "error",
      message: `index ${index.name} on ${index.table} is INVALID (an interrupted concurrent build): it enforces nothing; rerun the migration that builds it (migrate up drops and rebuilds it) or DROP it`,
    });
  }
  if (!(await stateTableExists(client))) {
    const golang = await readGolangMigrate(client);
    if (golang) {
      try {
        const adopt = adoptable(source.migrations, golang);
        if (adopt.length > 0) {
          problems.push({
            kind: "golang-migrate",
            name: "",
            severity: "warning",
            message: `golang-migrate's schema_migrations is at version ${golang.version}: \`migrate up\` records ${adopt[0]!.name} … ${adopt.at(-1)!.name} as applied without running them`,
          });
        }
      } catch (err) {
        if (!(err instanceof AdoptionRefusedError)) throw err;
        problems.push({
          kind: "golang-migrate",
          name: "",
          severity: "error",
          message: err.message,
        });
      }
    }
  }
  return { ...result, problems, ignored: source.ignored };
}
