import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readMigrations } from "./source.js";

// `migrate create NAME` and `migrate create NAME --expand KIND`
// (internal/migrate/expand/) share this path: the name check, the UTC stamp,
// the version check and the all-or-nothing write.

/** A migration NAME `create` refuses: not lowercase letters, digits and underscores. */
export class MigrationNameError extends Error {
  override name = "MigrationNameError";
}

/** Refuses a NAME that is not lowercase letters, digits and underscores, starting with a letter. */
export function checkMigrationName(name: string): void {
  if (!/^[a-z][a-z0-9_]{0,99}$/.test(name)) {
    throw new MigrationNameError(
      `migration name "${name}": use lowercase letters, digits and underscores, starting with a letter`,
    );
  }
}

/** YYYYMMDDHHMMSS of `now`, in UTC: the version of a file created then. */
export function migrationStamp(now: Date): string {
  return now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
}

/** Refuses a version that a migration of `dir` already has. */
export function checkVersionFree(dir: string, stamp: string): void {
  const taken = readMigrations(dir).migrations.find((m) => m.version === BigInt(stamp));
  if (taken)
    throw new Error(`version ${stamp} is already used by ${taken.upPath}; wait a second and retry`);
}

/** The header comment every created file starts with. */
export function createdHeader(base: string, direction: "up" | "down", now: Date): string {
  return `-- ${base} (${direction})\n-- Created ${now.toISOString()}.\n`;
}

/**
 * Writes every file or none: each is created exclusively (`wx`: an existing
 * file is never overwritten, even one that appeared after the check), and
 * those written are removed when a later one fails.
 */
export function writeAllOrNone(files: { path: string; text: string }[]): void {
  for (const { path } of files) if (existsSync(path)) throw new Error(`${path} already exists`);
  const written: string[] = [];
  try {
    for (const { path, text } of files) {
      writeFileSync(path, text, { flag: "wx" });
      written.push(path);
    }
  } catch (err) {
    for (const path of written) rmSync(path, { force: true });
    throw err;
  }
}

/** Writes an empty pair `YYYYMMDDHHMMSS_name.{up,down}.sql` (UTC) with header comments. */
export async function createMigration(
  dir: string,
  name: string,
  now = new Date(),
): Promise<{ up: string; down: string }> {
  checkMigrationName(name);
  const stamp = migrationStamp(now);
  const base = `${stamp}_${name}`;
  checkVersionFree(dir, stamp);
  const up = join(dir, `${base}.up.sql`);
  const down = join(dir, `${base}.down.sql`);
  const describe = "-- Describe the change and why it is needed.\n\n";
  writeAllOrNone([
    { path: up, text: `${createdHeader(base, "up", now)}${describe}` },
    {
      path: down,
      text: `${createdHeader(base, "down", now)}${describe}-- Undo exactly what the up file does, in reverse order, with IF EXISTS.\n`,
    },
  ]);
  return { up, down };
}
