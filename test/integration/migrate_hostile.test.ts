import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { catalogSnapshot, query } from "../helpers/catalog.js";
import { migrationFixtures } from "../helpers/migrations.js";

// What a careless or hostile file, setting or neighbour does to the commands
// that look and the ones that change: the truth, a clear error, nothing half-done.

const { freshDb, folder, migrate } = migrationFixtures();

const pair = {
  "1_t.up.sql": "CREATE TABLE t (a int);\n",
  "1_t.down.sql": "DROP TABLE t;\n",
  "2_u.up.sql": "CREATE TABLE u (a int);\n",
  "2_u.down.sql": "DROP TABLE u;\n",
};

describe("what a look finds is exit 1, what keeps it from looking exit 2", () => {
  it("an applied file edited since: up --dry-run and plan exit 1, as up and validate do", async () => {
    const db = await freshDb();
    const dir = folder(pair, { project: false });
    expect((await migrate(db, ["up", "1", "--dir", dir])).code).toBe(0);
    appendFileSync(join(dir, "1_t.up.sql"), "-- edited after it ran\n");
    for (const command of [["up"], ["validate"], ["up", "--dry-run"], ["plan"]]) {
      const run = await migrate(db, [...command, "--dir", dir]);
      expect(run.code, `${command.join(" ")}: ${run.output}`).toBe(1);
    }
  });

  it("a table locked by another session: plan waits at most --lock-timeout for its size, then exits 2 saying so", async () => {
    const db = await freshDb();
    const dir = folder(pair, { project: false });
    expect((await migrate(db, ["up", "1", "--dir", dir])).code).toBe(0);
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE");
      for (const command of [["plan"], ["up", "--dry-run"]]) {
        const run = await migrate(db, [...command, "--dir", dir, "--lock-timeout", "1s"]);
        expect(run.code, run.output).toBe(2);
        expect(run.output).toContain("could not read the tables' sizes");
      }
    } finally {
      await holder.end();
    }
  });
});

describe("bytes a file should not hold", () => {
  it("a NUL byte (where PostgreSQL would see the file end) is refused, naming file and line; nothing applied, nothing linted as clean", async () => {
    const db = await freshDb();
    const dir = folder(pair, { project: false });
    writeFileSync(join(dir, "3_n.up.sql"), "-- note \0\nDROP TABLE t;\n");
    writeFileSync(join(dir, "3_n.down.sql"), "SELECT 1;\n");
    const up = await migrate(db, ["up", "--dir", dir]);
    expect(up.code, up.output).toBe(1);
    expect(up.output).toContain(`${join(dir, "3_n.up.sql")}:1: a NUL byte`);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
    const lint = await migrate(db, ["lint", "--dir", dir]);
    expect(lint.code, lint.output).toBe(1);
    expect(lint.output).toContain("a NUL byte");
  });

  it("invalid UTF-8 is refused rather than read as replacement characters", async () => {
    const db = await freshDb();
    const dir = folder(pair, { project: false });
    writeFileSync(join(dir, "3_n.up.sql"), Buffer.from([0x2d, 0x2d, 0x20, 0xff, 0x0a]));
    const up = await migrate(db, ["up", "--dir", dir]);
    expect(up.code, up.output).toBe(1);
    expect(up.output).toContain(`${join(dir, "3_n.up.sql")}: not valid UTF-8`);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
  });
});

describe("the database's own settings", () => {
  it("a search_path set on the database: verify and plan replay where up applied", async () => {
    const db = await freshDb();
    const dbName = new URL(db.url).pathname.slice(1);
    await query(db.url, `ALTER DATABASE "${dbName}" SET search_path = app, public`);
    const dir = folder(
      {
        "1_schema.up.sql": "CREATE SCHEMA app;\n",
        "1_schema.down.sql": "DROP SCHEMA app;\n",
        "2_t.up.sql": "CREATE TABLE t (id int);\n",
        "2_t.down.sql": "DROP TABLE t;\n",
        "3_u.up.sql": "CREATE TABLE u (id int);\n",
        "3_u.down.sql": "DROP TABLE u;\n",
      },
      { project: false },
    );
    expect((await migrate(db, ["up", "2", "--dir", dir])).code).toBe(0);
    expect(await query(db.url, "SELECT to_regclass('app.t') IS NOT NULL AS ok")).toEqual([
      { ok: true },
    ]);
    const verify = await migrate(db, ["verify", "--dir", dir]);
    expect(verify.code, verify.output).toBe(0);
    const plan = await migrate(db, ["plan", "--dir", dir, "--schema-from=replay", "--json"]);
    expect(plan.code, plan.output).toBe(0);
  });
});
