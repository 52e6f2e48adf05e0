import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { query } from "../helpers/catalog.js";
import { migrationFixtures } from "../helpers/migrations.js";

// A failed step is kept in migrate_failures (for `status` and every
// instance's migrations_failed), without PostgreSQL's message: it may quote
// the data.

const { freshDb, folder, migrate } = migrationFixtures();

describe("a migration that fails", () => {
  it("is recorded by name, direction, file:line and SQLSTATE; status names it until it is applied", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        "1_first.up.sql": "CREATE TABLE first_one (id int);\n",
        "1_first.down.sql": "DROP TABLE first_one;\n",
        "2_boom.up.sql": "CREATE TABLE boom (id int);\nSELECT 'secret-4711'::int;\n",
        "2_boom.down.sql": "DROP TABLE boom;\n",
      },
      { project: false },
    );
    const run = await migrate(db, ["up", "--dir", dir, "--operator", "deploy-bot"]);
    expect(run.code, run.output).toBe(1);
    const rows = await query(
      db.url,
      "SELECT migration, direction, at, sqlstate, db_user, operator, row_to_json(f)::text AS whole FROM migrate_failures f",
    );
    expect(rows).toEqual([
      {
        migration: "2_boom",
        direction: "up",
        at: `${join(dir, "2_boom.up.sql")}:2`,
        sqlstate: "22P02",
        db_user: "postgres",
        operator: "deploy-bot",
        whole: expect.not.stringContaining("secret-4711") as unknown,
      },
    ]);

    const status = await migrate(db, ["status", "--dir", dir]);
    expect(status.stdout).toMatch(
      /^ +last up FAILED at \S+Z: .*2_boom\.up\.sql:2 \(SQLSTATE 22P02\)$/m,
    );
    const json = JSON.parse((await migrate(db, ["status", "--dir", dir, "--json"])).stdout) as {
      migrations: { name: string; lastFailure?: object }[];
    };
    expect(json.migrations.map((e) => [e.name, e.lastFailure])).toEqual([
      ["1_first", undefined],
      ["2_boom", expect.objectContaining({ direction: "up", sqlstate: "22P02" })],
    ]);

    // Mended and applied: the failure stays recorded but no longer stands.
    writeFileSync(join(dir, "2_boom.up.sql"), "CREATE TABLE boom (id int);\n");
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    const after = await migrate(db, ["status", "--dir", dir]);
    expect(after.stdout).not.toMatch(/FAILED/);
    expect(await query(db.url, "SELECT count(*)::int AS n FROM migrate_failures")).toEqual([
      { n: 1 },
    ]);
    // Bookkeeping, as pgmigrations: not part of the schema the files make.
    const verify = await migrate(db, ["verify", "--dir", dir]);
    expect(verify.code, verify.output).toBe(0);
  });

  it("down: stands while the migration is still applied", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        "1_keep.up.sql": "CREATE TABLE keep (id int);\n",
        "1_keep.down.sql": "DROP TABLE nowhere;\n",
      },
      { project: false },
    );
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    expect((await migrate(db, ["down", "--dir", dir])).code).toBe(1);
    const status = await migrate(db, ["status", "--dir", dir]);
    expect(status.stdout).toMatch(/last down FAILED at .*1_keep\.down\.sql:1 \(SQLSTATE 42P01\)/);
  });
});
