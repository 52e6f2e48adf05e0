import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { readCatalog } from "../../internal/migrate/lint/catalog.js";
import { query } from "../helpers/catalog.js";
import type { TestDatabase } from "../helpers/db.js";
import { BASE_SCHEMA } from "../helpers/lint_fixture.js";
import { migrationFixtures } from "../helpers/migrations.js";

// `migrate lint` given a database: the pending files only, tables judged by
// the catalog, severity by the table's size.

const { freshDb, folder, migrate } = migrationFixtures();

interface Json {
  findings: {
    rule: string;
    severity: string;
    line: number;
    table?: string;
    size?: { rows: number; bytes: number };
  }[];
  errors: number;
  appliedNotLinted: string[];
}

describe("lint with a database", () => {
  let db: TestDatabase;
  let dir: string;
  beforeAll(async () => {
    db = await freshDb();
    dir = folder(
      {
        "000001_base.up.sql": BASE_SCHEMA,
        "000001_base.down.sql": "DROP TABLE users, orders, events CASCADE;",
      },
      { project: false },
    );
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    // users is big enough for an error at the thresholds below; events stays empty.
    await query(
      db.url,
      "INSERT INTO users SELECT g, 'u', g, 'e', 1 FROM generate_series(51, 5000) g",
    );
    await query(db.url, "ANALYZE users; ANALYZE events");
  });

  it("sizes a partitioned table by its partitions and an index by its table", async () => {
    const db2 = await freshDb();
    const d = folder(
      {
        "000001_part.up.sql":
          "CREATE TABLE m (a int, b int) PARTITION BY RANGE (a);\nCREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100000);\nCREATE INDEX m1_b ON m1 (b);\n",
        "000001_part.down.sql": "DROP TABLE m;\n",
        "000002_rewrite.up.sql": "ALTER TABLE m ALTER COLUMN b TYPE bigint;\nREINDEX INDEX m1_b;\n",
        "000002_rewrite.down.sql": "SELECT 1;\n",
      },
      { project: false },
    );
    expect((await migrate(db2, ["up", "1", "--dir", d])).code).toBe(0);
    await query(db2.url, "INSERT INTO m SELECT g, g FROM generate_series(1, 3000) g; ANALYZE m");
    const run = await migrate(db2, [
      "lint",
      "--sizes",
      "--dir",
      d,
      "--json",
      "--error-rows",
      "1000",
    ]);
    const out = JSON.parse(run.stdout) as Json;
    expect(out.findings.map((f) => [f.line, f.severity, f.size?.rows])).toEqual([
      [1, "error", 3000],
      [2, "error", 3000],
    ]);
  });

  it("takes severity from the table's size: a rewrite of a big table is an error, of an empty one a warning", async () => {
    writeFileSync(
      join(dir, "000002_types.up.sql"),
      "ALTER TABLE users ALTER COLUMN age TYPE bigint;\nALTER TABLE events ALTER COLUMN id TYPE numeric;\n",
    );
    writeFileSync(join(dir, "000002_types.down.sql"), "SELECT 1;\n");
    const run = await migrate(db, [
      "lint",
      "--sizes",
      "--dir",
      dir,
      "--json",
      "--error-rows",
      "1000",
    ]);
    expect(run.code, run.output).toBe(1);
    const out = JSON.parse(run.stdout) as Json;
    expect(out.appliedNotLinted).toEqual(["000001_base"]);
    const [users, events] = out.findings;
    expect(users).toMatchObject({
      rule: "changing-column-type",
      severity: "error",
      table: "users",
      line: 1,
    });
    expect(users!.size!.rows).toBe(5000);
    expect(users!.size!.bytes).toBeGreaterThan(0);
    expect(events).toMatchObject({
      rule: "changing-column-type",
      severity: "warning",
      table: "events",
      line: 2,
    });
    expect(events!.size!.rows).toBe(0);

    // Thresholds above the table: a warning, exit 0; the human form names lock and size.
    const lenient = await migrate(db, ["lint", "--sizes", "--dir", dir, "--error-rows", "1000000"]);
    expect(lenient.code, lenient.output).toBe(0);
    expect(lenient.stdout).toMatch(/000002_types\.up\.sql:1: warning \[changing-column-type\]/);
    expect(lenient.stdout).toMatch(/lock: ACCESS EXCLUSIVE on users \(5000 rows, [0-9.]+ kB\)/);
    expect(lenient.stdout).toMatch(/fix: {2}add a new column/);

    // Without a database: the rule's default severity.
    const offline = await migrate(db, ["lint", "--dir", dir, "--json"], {
      env: { DATABASE_URL: undefined },
    });
    const findings = (JSON.parse(offline.stdout) as Json).findings.filter(
      (f) => f.rule === "changing-column-type",
    );
    expect(findings.map((f) => [f.severity, f.size])).toEqual([
      ["error", undefined],
      ["error", undefined],
    ]);
  });

  it("judges CREATE TABLE IF NOT EXISTS by whether the table exists", async () => {
    const other = folder(
      { "000001_base.up.sql": BASE_SCHEMA, "000001_base.down.sql": "SELECT 1;" },
      { project: false },
    );
    // The table exists in the database although no file created it.
    await query(db.url, "CREATE TABLE legacy (id bigint, note text)");
    writeFileSync(
      join(other, "000003_ifne.up.sql"),
      [
        "CREATE TABLE IF NOT EXISTS legacy (id bigint, note text);",
        "CREATE INDEX legacy_note ON legacy (note);",
        "CREATE TABLE IF NOT EXISTS fresh (id bigint);",
        "CREATE INDEX fresh_id ON fresh (id);",
        "",
      ].join("\n"),
    );
    writeFileSync(join(other, "000003_ifne.down.sql"), "SELECT 1;\n");
    const run = await migrate(db, ["lint", "--sizes", "--dir", other, "--json"]);
    const out = JSON.parse(run.stdout) as Json;
    expect(out.findings.map((f) => [f.rule, f.line])).toEqual([
      ["require-concurrent-index-creation", 2],
    ]);
    // Offline the same file reads legacy as new: no earlier file created it.
    const offline = await migrate(db, ["lint", "--dir", other, "--json"], {
      env: { DATABASE_URL: undefined },
    });
    expect((JSON.parse(offline.stdout) as Json).findings).toEqual([]);
  });

  it("refuses bad thresholds with exit 2", async () => {
    const run = await migrate(db, ["lint", "--sizes", "--dir", dir, "--error-bytes", "lots"]);
    expect(run.code).toBe(2);
    expect(run.output).toMatch(/--error-bytes lots: expected a size/);
  });
});

describe("the catalog lint reads", () => {
  it("When a view is being replaced, Then the sizes are read without waiting for its lock", async () => {
    const db = await freshDb();
    await query(
      db.url,
      `CREATE TABLE sized (id int PRIMARY KEY); INSERT INTO sized SELECT generate_series(1, 500); ANALYZE sized;
       CREATE TABLE parted (id int) PARTITION BY RANGE (id);
       CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
       INSERT INTO parted SELECT generate_series(1, 300); ANALYZE parted_1;
       CREATE VIEW sized_view AS SELECT * FROM sized`,
    );
    // CREATE OR REPLACE VIEW holds ACCESS EXCLUSIVE on the view alone until it commits.
    const replacing = new pg.Client({ connectionString: db.url });
    const reader = new pg.Client({ connectionString: db.url });
    await replacing.connect();
    await reader.connect();
    try {
      await replacing.query("BEGIN; CREATE OR REPLACE VIEW sized_view AS SELECT * FROM sized");
      // A wait for that lock fails instead of hanging the test.
      await reader.query("SET lock_timeout = '5s'");

      const catalog = await readCatalog(reader, { lockTimeoutMs: 5000 });

      const [expected] = await query<{ sized: string; parted: string }>(
        db.url,
        `SELECT pg_total_relation_size('sized')::text AS sized, pg_total_relation_size('parted_1')::text AS parted`,
      );
      expect(catalog.size("sized")).toEqual({ rows: 500, bytes: Number(expected!.sized) });
      expect(catalog.size("sized_pkey")).toEqual(catalog.size("sized"));
      expect(catalog.size("parted")).toEqual({ rows: 300, bytes: Number(expected!.parted) });
      expect(catalog.size("sized_view")).toBeUndefined();
    } finally {
      await replacing.end();
      await reader.end();
    }
  });
});
