import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { createTestDatabase, type TestDatabase } from "./db.js";
import { runMigrate, type SpawnOptions } from "./process.js";

/** The project's migration names, in order. */
export const projectNames = readdirSync("migrations")
  .filter((f) => f.endsWith(".up.sql"))
  .map((f) => f.replace(/\.up\.sql$/, ""))
  .sort();

/** Those a server's own `migrate: up` applies: all but the contracts (they wait for the previous release). */
export const startupNames = projectNames.filter(
  (name) =>
    !/^-- migrate:phase contract\b/m.test(readFileSync(`migrations/${name}.up.sql`, "utf8")),
);

/**
 * Databases and migration folders for one test file, dropped and removed
 * after it; `migrate` runs cmd/migrate against a database by DATABASE_URL.
 */
export function migrationFixtures() {
  const dbs: TestDatabase[] = [];
  const dirs: string[] = [];
  afterAll(async () => {
    for (const db of dbs) await db.drop();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  return {
    async freshDb(): Promise<TestDatabase> {
      const db = await createTestDatabase();
      dbs.push(db);
      return db;
    },
    /** A temporary folder: the project's migrations (unless `project: false`) plus `files`. */
    folder(files: Record<string, string> = {}, { project = true } = {}): string {
      const dir = mkdtempSync(join(tmpdir(), "kbts-migrations-"));
      dirs.push(dir);
      if (project) cpSync("migrations", dir, { recursive: true });
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
      return dir;
    },
    migrate(db: TestDatabase, args: string[], opts: SpawnOptions = {}) {
      return runMigrate(args, { ...opts, env: { DATABASE_URL: db.url, ...opts.env } });
    },
  };
}
