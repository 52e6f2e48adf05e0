import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { testRootKey } from "../helpers/app.js";
import { catalogSnapshot, query } from "../helpers/catalog.js";
import type { TestDatabase } from "../helpers/db.js";
import { migrationFixtures } from "../helpers/migrations.js";

const { freshDb, folder, migrate } = migrationFixtures();

// A folder as golang-migrate projects publish them: its file pattern (dots
// and dashes in titles, an upper-case extension), up and down of one version
// with different titles, empty files, files that are no migration, a
// concurrent index without any marker, a file wrapped in BEGIN … COMMIT.
const golangFolder = {
  "1_init.up.sql": "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL);\n",
  "1_init.down.sql": "DROP TABLE accounts;\n",
  "2_placeholder.up.sql": "",
  "2_placeholder.down.sql": "",
  "3_add-email.up.sql": "ALTER TABLE accounts ADD COLUMN email text;\n",
  "3_remove_email.down.sql": "ALTER TABLE accounts DROP COLUMN email;\n",
  "4_upgrade_channels_v6.0.up.sql":
    "CREATE TABLE channels (id bigserial PRIMARY KEY, account_id bigint REFERENCES accounts);\n",
  "4_upgrade_channels_v6.0.down.sql": "DROP TABLE channels;\n",
  "5_accounts_email_idx.up.SQL":
    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS accounts_email_idx ON accounts (email);\n",
  "5_accounts_email_idx.down.SQL": "DROP INDEX CONCURRENTLY IF EXISTS accounts_email_idx;\n",
  "6_audit.up.sql": "BEGIN;\nCREATE TABLE audit (id bigserial, note text);\nCOMMIT;\n",
  "6_audit.down.sql": "BEGIN;\nDROP TABLE audit;\nCOMMIT;\n",
  "7_notes.up.sql": "CREATE TABLE notes (id int) -- no semicolon, and a comment at the end",
  "7_notes.down.sql": "DROP TABLE notes -- likewise",
  "README.md": "# migrations\n",
  "migrations.go": "package migrations\n",
  ".gitkeep": "",
};
const versions = [
  "1_init",
  "2_placeholder",
  "3_add-email",
  "4_upgrade_channels_v6.0",
  "5_accounts_email_idx",
  "6_audit",
  "7_notes",
];

describe("a golang-migrate folder as published", () => {
  it("applies, reverts and re-applies with identical catalogs", async () => {
    const db = await freshDb();
    const dir = folder(golangFolder, { project: false });
    const up = await migrate(db, ["up", "--dir", dir]);
    expect(up.code, up.output).toBe(0);
    expect([...up.stdout.matchAll(/^applied\s+(\S+)/gm)].map((m) => m[1])).toEqual(versions);
    const validate = await migrate(db, ["validate", "--dir", dir]);
    expect(validate.code, validate.output).toBe(0);
    for (const name of ["README.md", "migrations.go", ".gitkeep"])
      expect(validate.stdout).toContain(`ignored: ${name}`);
    const first = await catalogSnapshot(db.url);
    expect(first).toContainEqual(
      "index CREATE UNIQUE INDEX accounts_email_idx ON public.accounts USING btree (email)",
    );

    const down = await migrate(db, ["down", "--all", "--dir", dir]);
    expect(down.code, down.output).toBe(0);
    expect(await catalogSnapshot(db.url)).toEqual([]);
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    expect(await catalogSnapshot(db.url)).toEqual(first);
  });

  it("a broken down file is a warning at up and an error only when it runs", async () => {
    const db = await freshDb();
    const dir = folder(
      { ...golangFolder, "6_audit.down.sql": "DROP TABEL audit;\n" },
      { project: false },
    );
    const up = await migrate(db, ["up", "--dir", dir]);
    expect(up.code, up.output).toBe(0);
    expect(up.output).toMatch(
      /warning: .*6_audit\.down\.sql:1: syntax error at or near "TABEL" \(the down migration will fail if it runs\)/,
    );
    const down = await migrate(db, ["down", "2", "--dir", dir]);
    expect(down.code).toBe(1);
    // Checked before anything runs: 7_notes is not reverted either.
    expect(down.stdout).not.toMatch(/reverted/);
    expect(await query(db.url, "SELECT to_regclass('notes')::text AS t")).toEqual([{ t: "notes" }]);
    expect(down.output).toMatch(/6_audit\.down\.sql:1: syntax error at or near "TABEL"/);
    expect(await query(db.url, "SELECT to_regclass('audit')::text AS t")).toEqual([{ t: "audit" }]);
  });

  it("two files of one version are refused, naming both", async () => {
    const db = await freshDb();
    const dir = folder(
      { ...golangFolder, "03_add_email_again.up.sql": "SELECT 1;\n" },
      { project: false },
    );
    const run = await migrate(db, ["up", "--dir", dir]);
    expect(run.code).toBe(1);
    expect(run.output).toMatch(
      /3_add-email\.up\.sql: version 3 already has an up file, 03_add_email_again\.up\.sql/,
    );
  });
});

/** A database migrated by golang-migrate itself to `version`: the up files run, its table written. */
async function migratedByGolang(db: TestDatabase, dir: string, version: number, dirty = false) {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    for (const name of versions.slice(0, version)) {
      const file = Object.keys(golangFolder).find((f) => f.startsWith(`${name}.up.`))!;
      const sql = readFileSync(join(dir, file), "utf8").replace(/^BEGIN;|COMMIT;$/gm, "");
      if (sql.trim()) await client.query(sql);
    }
    await client.query(
      "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)",
    );
    await client.query("INSERT INTO schema_migrations VALUES ($1, $2)", [version, dirty]);
  } finally {
    await client.end();
  }
}

describe("adopting a database golang-migrate migrated", () => {
  it("records its versions as applied, with checksums, then runs only the later ones", async () => {
    const db = await freshDb();
    const dir = folder(golangFolder, { project: false });
    await migratedByGolang(db, dir, 4);
    const status = await migrate(db, ["status", "--dir", dir]);
    expect(status.stdout).toMatch(/schema_migrations is at version 4: `migrate up` records/);

    const up = await migrate(db, ["up", "--dir", dir]);
    expect(up.code, up.output).toBe(0);
    expect(up.stdout).toMatch(/^adopted {2}4 migrations from golang-migrate/m);
    expect([...up.stdout.matchAll(/^applied\s+(\S+)/gm)].map((m) => m[1])).toEqual(
      versions.slice(4),
    );
    const rows = await query<{ name: string; checksum: string | null }>(
      db.url,
      "SELECT name, checksum FROM pgmigrations ORDER BY id",
    );
    expect(rows.map((r) => r.name)).toEqual(versions);
    expect(rows.every((r) => /^[0-9a-f]{64}$/.test(r.checksum ?? ""))).toBe(true);
    expect((await migrate(db, ["validate", "--dir", dir])).code).toBe(0);
  });

  it("adopts once: after down --all, up runs everything rather than adopting again", async () => {
    const db = await freshDb();
    const dir = folder(golangFolder, { project: false });
    await migratedByGolang(db, dir, 4);
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    expect((await migrate(db, ["down", "--all", "--dir", dir])).code).toBe(0);
    const status = await migrate(db, ["status", "--dir", dir]);
    expect(status.stdout).not.toMatch(/schema_migrations/);
    const up = await migrate(db, ["up", "--dir", dir]);
    expect(up.code, up.output).toBe(0);
    expect(up.stdout).not.toMatch(/adopted/);
    expect([...up.stdout.matchAll(/^applied\s+(\S+)/gm)].map((m) => m[1])).toEqual(versions);
  });

  it("refuses a dirty golang-migrate state, saying what to do, and changes nothing", async () => {
    const db = await freshDb();
    const dir = folder(golangFolder, { project: false });
    await migratedByGolang(db, dir, 3, true);
    const before = await catalogSnapshot(db.url, { includeMigrationTable: true });
    const up = await migrate(db, ["up", "--dir", dir]);
    expect(up.code).toBe(1);
    expect(up.output).toMatch(/version 3 is dirty: that migration failed halfway/);
    expect(up.output).toMatch(/UPDATE schema_migrations SET dirty = false/);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual(before);
    expect((await migrate(db, ["validate", "--dir", dir])).code).toBe(1);
  });

  it("baseline VERSION records a hand-built database once; up runs the rest", async () => {
    const db = await freshDb();
    const dir = folder(golangFolder, { project: false });
    await query(db.url, "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL)");
    await query(db.url, "ALTER TABLE accounts ADD COLUMN email text");
    const none = await migrate(db, ["baseline", "8", "--dir", dir]);
    expect(none.code).toBe(1);
    expect(none.output).toMatch(/baseline 8: no migration file has that version/);

    const base = await migrate(db, ["baseline", "3", "--dir", dir]);
    expect(base.code, base.output).toBe(0);
    expect(base.stdout).toBe(
      versions
        .slice(0, 3)
        .map((n) => `recorded ${n}\n`)
        .join(""),
    );
    const again = await migrate(db, ["baseline", "3", "--dir", dir]);
    expect(again.code).toBe(1);
    expect(again.output).toMatch(/no recorded migrations, and this one has some/);
    const up = await migrate(db, ["up", "--dir", dir]);
    expect(up.code, up.output).toBe(0);
    expect([...up.stdout.matchAll(/^applied\s+(\S+)/gm)].map((m) => m[1])).toEqual(
      versions.slice(3),
    );
  });

  it("baseline on a database golang-migrate left dirty is refused, saying what to do", async () => {
    const db = await freshDb();
    const dir = folder(golangFolder, { project: false });
    await migratedByGolang(db, dir, 3, true);
    const before = await catalogSnapshot(db.url, { includeMigrationTable: true });
    const run = await migrate(db, ["baseline", "3", "--dir", dir]);
    expect(run.code).toBe(1);
    expect(run.output).toMatch(
      /version 3 is dirty: that migration failed halfway; nothing was changed/,
    );
    expect(run.output).toMatch(/UPDATE schema_migrations SET dirty = false/);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual(before);
    // Still reported afterwards: nothing hid it.
    expect((await migrate(db, ["validate", "--dir", dir])).code).toBe(1);
  });

  it("baseline at another version than golang-migrate's is refused, naming both", async () => {
    const db = await freshDb();
    const dir = folder(golangFolder, { project: false });
    await migratedByGolang(db, dir, 4);
    const before = await catalogSnapshot(db.url, { includeMigrationTable: true });
    const run = await migrate(db, ["baseline", "3", "--dir", dir]);
    expect(run.code).toBe(1);
    expect(run.output).toMatch(/says version 4 is applied, not 3; nothing was changed/);
    expect(run.output).toMatch(/`migrate baseline 4`/);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual(before);
    const agreed = await migrate(db, ["baseline", "4", "--dir", dir]);
    expect(agreed.code, agreed.output).toBe(0);
  });
});

describe("files that manage their own transactions (--transactions=file)", () => {
  const ownFolder = {
    "1_base.up.sql": "CREATE TABLE kv (k text PRIMARY KEY, v text);\n",
    "1_base.down.sql": "DROP TABLE kv;\n",
    "2_mixed.up.sql":
      "ALTER TABLE kv ADD COLUMN n int;\nBEGIN;\nINSERT INTO kv VALUES ('a', 'x', 1);\nUPDATE kv SET n = 2;\nCOMMIT;\n-- migrate:allow index-not-concurrent \"kv holds one row\"\nCREATE INDEX kv_n ON kv (n);\n",
    "2_mixed.down.sql": "DROP INDEX kv_n;\nDELETE FROM kv;\nALTER TABLE kv DROP COLUMN n;\n",
  };

  it("are refused by default, naming the flag; run as written with it", async () => {
    const db = await freshDb();
    const dir = folder(ownFolder, { project: false });
    const refused = await migrate(db, ["up", "--dir", dir]);
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/2_mixed\.up\.sql:2: transaction control \(BEGIN\)/);
    expect(refused.output).toContain("--transactions=file");
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);

    const plan = await migrate(db, ["up", "--dir", dir, "--transactions=file", "--dry-run"]);
    expect(plan.stdout).toMatch(
      /-- 2_mixed \(up\) from .*, statement by statement, in the transactions the file opens itself/,
    );
    const up = await migrate(db, ["up", "--dir", dir, "--transactions", "file"]);
    expect(up.code, up.output).toBe(0);
    expect([...up.stdout.matchAll(/^applied\s+(\S+)/gm)].map((m) => m[1])).toEqual([
      "1_base",
      "2_mixed",
    ]);
    expect(await query(db.url, "SELECT k, v, n FROM kv")).toEqual([{ k: "a", v: "x", n: 2 }]);
    expect(await query(db.url, "SELECT to_regclass('kv_n') IS NOT NULL AS t")).toEqual([
      { t: true },
    ]);
    expect((await migrate(db, ["validate", "--dir", dir])).code).toBe(0);
  });

  it("can be said once in the config (data.database.migration.transactions); the flag wins", async () => {
    const db = await freshDb();
    const dir = folder(ownFolder, { project: false });
    const conf = join(dir, "migrate.yaml");
    writeFileSync(
      conf,
      `data: { database: { migration: { transactions: file } } }\nkms: { root_key: "${testRootKey}" }\n`,
    );
    const overridden = await migrate(db, [
      "up",
      "--dir",
      dir,
      "-conf",
      conf,
      "--transactions=migration",
    ]);
    expect(overridden.code).toBe(1);
    expect(overridden.output).toContain("--transactions=file");
    const up = await migrate(db, ["up", "--dir", dir, "-conf", conf]);
    expect(up.code, up.output).toBe(0);
    expect(await query(db.url, "SELECT k, v, n FROM kv")).toEqual([{ k: "a", v: "x", n: 2 }]);
  });

  it("a failure after the file's own COMMIT says what committed and that the version is dirty", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        ...ownFolder,
        "3_fails.up.sql":
          "BEGIN;\nINSERT INTO kv VALUES ('b', 'y', 3);\nCOMMIT;\nBEGIN;\nINSERT INTO kv VALUES ('c', 'z', 4);\nINSERT INTO kv VALUES ('b', 'dup', 5);\nCOMMIT;\n",
        "3_fails.down.sql": "DELETE FROM kv WHERE k IN ('b', 'c');\n",
      },
      { project: false },
    );
    const run = await migrate(db, ["up", "--dir", dir, "--transactions=file"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^FAILED {3}3_fails \(up\) at .*3_fails\.up\.sql:6: duplicate key/m);
    expect(run.stdout).toMatch(
      /what ran through .*3_fails\.up\.sql:3 committed; the transaction it opened at .*3_fails\.up\.sql:4 rolled back; it is not recorded, so the database is between versions \(dirty\)/,
    );
    expect(await query(db.url, "SELECT k FROM kv ORDER BY k")).toEqual([{ k: "a" }, { k: "b" }]);
    expect(await query(db.url, "SELECT name FROM pgmigrations ORDER BY id")).toEqual([
      { name: "1_base" },
      { name: "2_mixed" },
    ]);
    const json = await migrate(db, ["up", "--dir", dir, "--transactions=file", "--json"]);
    expect(JSON.parse(json.stdout).failed).toMatchObject({
      statementsApplied: 0,
      ownTransactions: { finalThrough: null, rolledBackFrom: expect.stringMatching(/:1$/) },
    });
  });
});
