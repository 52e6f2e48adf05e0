import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { migratorOptions } from "../../internal/migrate/options.js";
import { migrateOnStart } from "../../internal/migrate/startup.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { testRootKey } from "../helpers/app.js";
import { catalogSnapshot, query } from "../helpers/catalog.js";
import { migrationFixtures } from "../helpers/migrations.js";

// Consent in the file, refusal at apply time: `up` (and the server's start-up
// `up`) runs a dangerous statement only when its file says why, and records it.

const { freshDb, folder, migrate } = migrationFixtures();

const table = {
  "1_t.up.sql": "CREATE TABLE t (a int, b int);\nINSERT INTO t VALUES (1, 2);\n",
  "1_t.down.sql": "DROP TABLE t;\n",
};
const dropB = (marker = "") => ({
  "2_drop_b.up.sql": `-- b is read by nothing since v2.3\n${marker}ALTER TABLE t DROP COLUMN b;\n`,
  "2_drop_b.down.sql": "ALTER TABLE t ADD COLUMN b int;\n",
});
const allow = '-- migrate:allow ban-drop-column "column unused since v2.3"\n';

describe("consent", () => {
  it("a rewrite needs consent by the table's size: none on an empty table, refused on a large one", async () => {
    const rewrite = {
      "2_fill.up.sql": "UPDATE t SET b = a;\n",
      "2_fill.down.sql": "UPDATE t SET b = NULL;\n",
    };
    const empty = await freshDb();
    const small = folder({ ...table, ...rewrite }, { project: false });
    const applied = await migrate(empty, ["up", "--dir", small]);
    expect(applied.code, applied.output).toBe(0);

    const large = await freshDb();
    const big = folder(
      {
        "1_t.up.sql": "CREATE TABLE t (a int, b int);\n",
        "1_t.down.sql": "DROP TABLE t;\n",
        ...rewrite,
      },
      { project: false },
    );
    expect((await migrate(large, ["up", "1", "--dir", big])).code).toBe(0);
    const c = new pg.Client({ connectionString: large.url });
    await c.connect();
    // Sized by the catalog's estimate, as lint --sizes reads it.
    await c.query("INSERT INTO t SELECT g, NULL FROM generate_series(1, 150000) g; ANALYZE t");
    await c.end();
    const run = await migrate(large, ["up", "--dir", big]);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toMatch(/2_fill\.up\.sql:1: \[update-without-where\]/);
    expect(run.output).toContain("nothing was applied");
    // The bound is the operator's: raised in the config, the same table is small.
    const conf = join(big, "migrate.yaml");
    writeFileSync(
      conf,
      `data: { database: { migration: { lint_error_rows: 1000000, lint_error_bytes: 1073741824 } } }\nkms: { root_key: "${testRootKey}" }\n`,
    );
    const raised = await migrate(large, ["up", "--dir", big, "-conf", conf]);
    expect(raised.code, raised.output).toBe(0);
  });
  it("up refuses a dangerous file without consent, naming file, line, rule and marker; nothing is applied", async () => {
    const db = await freshDb();
    const dir = folder({ ...table, ...dropB() }, { project: false });
    const run = await migrate(db, ["up", "--dir", dir]);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toContain(`${join(dir, "2_drop_b.up.sql")}:2: [ban-drop-column]`);
    expect(run.output).toContain(`add above line 2: -- migrate:allow ban-drop-column "`);
    expect(run.output).toContain("nothing was applied");
    // Refused as a whole: not even the safe file before it ran.
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);

    const dry = await migrate(db, ["up", "--dir", dir, "--dry-run"]);
    expect(dry.code, dry.output).toBe(1);
    expect(dry.stdout).toMatch(/-- NEEDS CONSENT: .*2_drop_b\.up\.sql:2 \[ban-drop-column\]/);
    expect(dry.stdout).toContain("-- up would refuse: 1 file(s) need consent");
    const json = await migrate(db, ["up", "--dir", dir, "--dry-run", "--json"]);
    const steps = JSON.parse(json.stdout).steps as { name: string; gate?: { ok: boolean } }[];
    expect(steps.map((s) => [s.name, s.gate?.ok])).toEqual([
      ["1_t", true],
      ["2_drop_b", false],
    ]);
    // A deploy script reading --json gets the refusal's structure, not only its text.
    const refusal = await migrate(db, ["up", "--dir", dir, "--json"]);
    expect(refusal.code).toBe(1);
    const doc = JSON.parse(refusal.stdout) as {
      exitCode: number;
      refused: { name: string; needed: { rule: string; line: number; marker: string }[] }[];
    };
    expect(doc.exitCode).toBe(1);
    expect(doc.refused.map((r) => [r.name, r.needed.map((n) => [n.rule, n.line])])).toEqual([
      ["2_drop_b", [["ban-drop-column", 2]]],
    ]);
    expect(doc.refused[0]!.needed[0]!.marker).toMatch(/^-- migrate:allow ban-drop-column "/);
    // A rehearsal shows what the file would lock, and fails as up would.
    const plan = await migrate(db, ["plan", "--dir", dir]);
    expect(plan.code, plan.output).toBe(1);
    expect(plan.stdout).toMatch(/ {2}NEEDS CONSENT: .*2_drop_b\.up\.sql:2 \[ban-drop-column\]/);
    expect(plan.stdout).toContain("up would refuse: 1 file(s) need consent (2_drop_b)");
    const rehearsed = await migrate(db, ["up", "--rehearse", "--dir", dir, "--json"]);
    expect(rehearsed.code, rehearsed.output).toBe(1);
    const r = JSON.parse(rehearsed.stdout) as {
      refused: string[];
      migrations: { name: string; gate: { ok: boolean } }[];
    };
    expect(r.refused).toEqual(["2_drop_b"]);
    expect(r.migrations.map((m) => [m.name, m.gate.ok])).toEqual([
      ["1_t", true],
      ["2_drop_b", false],
    ]);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
  });

  it("applies it with consent and records the rule, reason, database user and operator; status shows them", async () => {
    const db = await freshDb();
    const dir = folder({ ...table, ...dropB(allow) }, { project: false });
    const run = await migrate(db, ["up", "--dir", dir, "--operator", "alice"]);
    expect(run.code, run.output).toBe(0);
    expect(
      await query(
        db.url,
        "SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped",
      ),
    ).toEqual([{ attname: "a" }]);
    const rows = await query(
      db.url,
      `SELECT c.name, c.rule, c.line, c.reason, c.db_user, c.operator, c.consented_at = m.run_on AS with_run
         FROM migrate_consents c JOIN pgmigrations m ON m.id = c.migration_id`,
    );
    expect(rows).toEqual([
      {
        name: "2_drop_b",
        rule: "ban-drop-column",
        line: 2,
        reason: "column unused since v2.3",
        db_user: "postgres",
        operator: "alice",
        with_run: true,
      },
    ]);

    const status = await migrate(db, ["status", "--dir", dir]);
    expect(status.code, status.output).toBe(0);
    expect(status.stdout).toMatch(
      /consent ban-drop-column \(line 2\): "column unused since v2\.3" by alice as postgres at \d{4}-/,
    );
    const json = JSON.parse((await migrate(db, ["status", "--dir", dir, "--json"])).stdout);
    const entry = json.migrations.find((m: { name: string }) => m.name === "2_drop_b");
    expect(entry.consents).toEqual([
      expect.objectContaining({
        rule: "ban-drop-column",
        reason: "column unused since v2.3",
        dbUser: "postgres",
        operator: "alice",
      }),
    ]);
    expect(
      json.migrations.find((m: { name: string }) => m.name === "1_t").consents,
    ).toBeUndefined();
  });

  it("MIGRATE_OPERATOR names the operator when no flag does", async () => {
    const db = await freshDb();
    const dir = folder({ ...table, ...dropB(allow) }, { project: false });
    const run = await migrate(db, ["up", "--dir", dir], { env: { MIGRATE_OPERATOR: "bob" } });
    expect(run.code, run.output).toBe(0);
    expect(await query(db.url, "SELECT operator FROM migrate_consents")).toEqual([
      { operator: "bob" },
    ]);
  });

  it("adding a marker to an applied file is not an edit; editing its SQL still is", async () => {
    const db = await freshDb();
    const dir = folder({ ...table, ...dropB(allow) }, { project: false });
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    const path = join(dir, "1_t.up.sql");
    writeFileSync(
      path,
      `-- migrate:allow drop-table "consent written later, for the record"\n${readFileSync(path, "utf8")}`,
    );
    const validate = await migrate(db, ["validate", "--dir", dir]);
    expect(validate.code, validate.output).toBe(0);
    expect((await migrate(db, ["status", "--dir", dir])).stdout).toMatch(/^applied .* ok +1_t$/m);
    appendFileSync(path, "SELECT 1;\n");
    const edited = await migrate(db, ["validate", "--dir", dir]);
    expect(edited.code).toBe(1);
    expect(edited.stdout).toContain("1_t.up.sql was edited after it was applied");
  });

  it.each([
    ["no reason", "-- migrate:allow ban-drop-column\n", "ban-drop-column has no reason"],
    ["an empty reason", '-- migrate:allow ban-drop-column ""\n', "ban-drop-column has no reason"],
    ["an unknown rule", '-- migrate:allow drop-colum "typo"\n', 'unknown rule "drop-colum"'],
    ["no rule", "-- migrate:allow\n", "names no rule"],
  ])("a marker with %s is refused, naming it; nothing is applied", async (_, marker, named) => {
    const db = await freshDb();
    const dir = folder({ ...table, ...dropB(marker) }, { project: false });
    const run = await migrate(db, ["up", "--dir", dir]);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toContain(`${join(dir, "2_drop_b.up.sql")}:2: -- migrate:allow`);
    expect(run.output).toContain(named);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
  });

  it("lint-ignore silences `migrate lint` but is no consent at apply time", async () => {
    const db = await freshDb();
    const dir = folder(
      { ...table, ...dropB("-- migrate:lint-ignore ban-drop-column\n") },
      { project: false },
    );
    const run = await migrate(db, ["up", "--dir", dir]);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toContain("add above line 3: -- migrate:allow ban-drop-column");
  });

  it("the server's start-up up refuses too, and applies nothing", async () => {
    const db = await freshDb();
    const dir = folder({ ...table, ...dropB() }, { project: false });
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const opts = {
        ...migratorOptions(undefined, db.url, createLogger({ level: "silent", format: "json" })),
        dir,
      };
      await expect(migrateOnStart("up", opts, pool)).rejects.toThrow(
        /2_drop_b\.up\.sql:2: \[ban-drop-column\].*-- migrate:allow ban-drop-column/,
      );
    } finally {
      await pool.end();
    }
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
  });
});
