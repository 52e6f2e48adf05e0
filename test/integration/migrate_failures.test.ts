import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { migrationCounts } from "../../internal/migrate/startup.js";
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

  it("resolved by a later success: a revert afterwards does not bring it back", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        "1_flaky.up.sql": "SELECT 1/0;\n",
        "1_flaky.down.sql": "SELECT 1;\n",
      },
      { project: false },
    );
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(1);
    writeFileSync(join(dir, "1_flaky.up.sql"), "SELECT 1;\n");
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    expect((await migrate(db, ["down", "--dir", dir])).code).toBe(0);
    // Pending again, but its failure was resolved by the up that succeeded.
    const status = await migrate(db, ["status", "--dir", dir]);
    expect(status.stdout).toMatch(/^pending .* 1_flaky$/m);
    expect(status.stdout).not.toMatch(/FAILED/);
    expect(
      await query(db.url, "SELECT resolved_at IS NOT NULL AS resolved FROM migrate_failures"),
    ).toEqual([{ resolved: true }]);
  });

  it("is counted by an instance of the release before, which lacks the file; and not hidden from a role that may not read it", async () => {
    const db = await freshDb();
    const older = folder({ "1_a.up.sql": "SELECT 1;\n" }, { project: false });
    const newer = folder(
      { "1_a.up.sql": "SELECT 1;\n", "2_b.up.sql": "SELECT 1/0;\n" },
      { project: false },
    );
    expect((await migrate(db, ["up", "--dir", older])).code).toBe(0);
    expect((await migrate(db, ["up", "--dir", newer])).code).toBe(1);
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      expect(await migrationCounts(older, pool)()).toEqual({ pending: 0, failed: 1 });
      expect(await migrationCounts(newer, pool)()).toEqual({ pending: 1, failed: 1 });
    } finally {
      await pool.end();
    }
    // The release before's status names it too, as not in its folder.
    expect((await migrate(db, ["status", "--dir", older])).stdout).toMatch(
      /^warning: 2_b is not in this folder, and its up failed at .*SQLSTATE 22012/m,
    );

    const role = `failures_reader_${process.pid}`;
    // A password: the embedded PostgreSQL asks for one (SCRAM).
    await query(db.url, `CREATE ROLE ${role} LOGIN PASSWORD 'reader-pass-1'`);
    try {
      await query(db.url, `GRANT SELECT ON pgmigrations TO ${role}`);
      const url = new URL(db.url);
      url.username = role;
      url.password = "reader-pass-1";
      const limited = new pg.Pool({ connectionString: url.toString(), max: 1 });
      try {
        expect(await migrationCounts(newer, limited)()).toEqual({ pending: 1, failed: undefined });
      } finally {
        await limited.end();
      }
    } finally {
      await query(db.url, `DROP OWNED BY ${role}`);
      await query(db.url, `DROP ROLE ${role}`);
    }
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
