import { readGolangMigrate, AdoptionRefusedError, type GolangMigrateState } from "./adopt.js";
import type { MigratorOptions } from "./options.js";
import { locked } from "./session.js";
import { readMigrations } from "./source.js";
import { compare, ensureStateTable, readApplied, recordApplied, recordChecksum } from "./state.js";

// The commands that change only the record in pgmigrations, never the schema.

/** Records the current files' checksums for applied migrations (accepting edits). */
export function repair(opts: MigratorOptions): Promise<string[]> {
  const source = readMigrations(opts.dir);
  return locked(opts, undefined, async (client) => {
    const { problems } = compare(source.migrations, await readApplied(client));
    const fixes = problems.filter((x) => x.kind === "changed" || x.kind === "unrecorded");
    if (fixes.length > 0) await ensureStateTable(client);
    for (const p of fixes) {
      const file = source.migrations.find((f) => f.name === p.name)!;
      await recordChecksum(client, file);
      opts.log.info({ migration: file.name, was: p.kind }, "checksum recorded");
    }
    return fixes.map((p) => p.name);
  });
}

/**
 * Records every migration up to `version` as applied without running it, for
 * a database whose schema was built by other means. Refuses a database that
 * already has recorded migrations, a version no file has, and one that
 * golang-migrate's schema_migrations contradicts (dirty, or another version).
 */
export function baseline(opts: MigratorOptions, version: bigint): Promise<string[]> {
  const source = readMigrations(opts.dir);
  if (!source.migrations.some((f) => f.version === version)) {
    return Promise.reject(
      new AdoptionRefusedError(`baseline ${version}: no migration file has that version`),
    );
  }
  return locked(opts, undefined, async (client) => {
    if ((await readApplied(client)).length > 0) {
      throw new AdoptionRefusedError(
        "baseline is for a database with no recorded migrations, and this one has some (see `migrate status`); nothing was changed",
      );
    }
    refuseGolangMismatch(await readGolangMigrate(client), version);
    await ensureStateTable(client);
    const files = source.migrations.filter((f) => f.version <= version);
    await recordApplied(client, files);
    return files.map((f) => f.name);
  });
}

// golang-migrate's own record is the better witness of what ran: a baseline
// that contradicts it would hide a half-applied migration or skip real ones.
function refuseGolangMismatch(golang: GolangMigrateState | undefined, version: bigint): void {
  if (!golang || golang.version === undefined) return;
  if (golang.dirty) {
    throw new AdoptionRefusedError(
      `baseline ${version}: golang-migrate's schema_migrations says version ${golang.version} is dirty: that migration failed halfway; nothing was changed. ` +
        "Finish or undo it by hand, mark it clean (UPDATE schema_migrations SET dirty = false, with version set to the last migration fully applied), " +
        "then run `migrate up`, which adopts golang-migrate's state by itself",
    );
  }
  if (golang.version !== version) {
    throw new AdoptionRefusedError(
      `baseline ${version}: golang-migrate's schema_migrations says version ${golang.version} is applied, not ${version}; nothing was changed. ` +
        `Run \`migrate up\`, which adopts golang-migrate's state (through ${golang.version}) and applies the rest, or \`migrate baseline ${golang.version}\``,
    );
  }
}
