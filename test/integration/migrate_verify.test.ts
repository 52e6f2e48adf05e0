import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { migratorOptions } from "../../internal/migrate/options.js";
import { migrateOnStart } from "../../internal/migrate/startup.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { query } from "../helpers/catalog.js";
import type { TestDatabase } from "../helpers/db.js";
import { migrationFixtures, projectNames } from "../helpers/migrations.js";
import { spawnMigrate } from "../helpers/process.js";

// `migrate verify`, the schema half: the applied files replayed into a
// throwaway database and compared with the target's catalog. A clean
// database exits 0; each change made by hand is named (text and --json) and
// exits 1; a database it cannot reach exits 2.

const { freshDb, folder, migrate } = migrationFixtures();

interface Verification {
  consistent: boolean;
  database: string;
  replayed: number;
  pending: number;
  differences: { change: string; kind: string; name: string; message: string }[];
}

/** Whether the throwaway database a run names still exists (other tests' copies may, beside it). */
async function exists(db: TestDatabase, name: string): Promise<boolean> {
  const rows = await query(db.url, "SELECT 1 FROM pg_database WHERE datname = $1", [name]);
  return rows.length > 0;
}

/**
 * A file that sleeps `seconds` where it is replayed (a throwaway copy), not
 * where it is applied; each test sleeps its own number of seconds, so a
 * poll finds only its own sleeper.
 */
const sleeperInCopy = (seconds: number) =>
  `DO $$ BEGIN IF current_database() LIKE 'migrate_rehearsal_%' THEN PERFORM pg_sleep(${seconds}); END IF; END $$;\n`;

/** Once the copy replays the sleeper: the copy's name. */
async function replayingInCopy(target: TestDatabase, seconds: number): Promise<string> {
  const replaying = `SELECT datname FROM pg_stat_activity WHERE strpos(query, 'pg_sleep(${seconds})') > 0
      AND state = 'active' AND datname LIKE 'migrate_rehearsal_%' AND pid <> pg_backend_pid()`;
  await expect
    .poll(() => query(target.url, replaying), { timeout: 60_000, interval: 100 })
    .toHaveLength(1);
  return (await query<{ datname: string }>(target.url, replaying))[0]!.datname;
}

/** The server's start-up with `data.database.migrate: verify`. */
async function startVerifying(db: TestDatabase): Promise<void> {
  const pool = new pg.Pool({ connectionString: db.url, max: 1 });
  try {
    const silent = createLogger({ level: "silent", format: "json" });
    await migrateOnStart("verify", migratorOptions(undefined, db.url, silent), pool);
  } finally {
    await pool.end();
  }
}

describe("migrate verify (schema)", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDb();
    const up = await migrate(db, ["up"]);
    expect(up.code, up.output).toBe(0);
  });

  it("a database just migrated is consistent: exit 0, and the copy is dropped", async () => {
    const run = await migrate(db, ["verify"]);
    expect(run.code, run.output).toBe(0);
    expect(run.stdout).toMatch(
      new RegExp(
        `^schema: ${projectNames.length} applied migration\\(s\\) replayed into migrate_rehearsal_`,
      ),
    );
    expect(run.stdout).toContain("consistent: the schema is the one the applied migrations make");
    const json = await migrate(db, ["verify", "--json"]);
    expect(json.code, json.output).toBe(0);
    const v = JSON.parse(json.stdout) as Verification;
    expect(v).toMatchObject({
      consistent: true,
      replayed: projectNames.length,
      pending: 0,
      differences: [],
    });
    expect(v.database).toMatch(/^migrate_rehearsal_[0-9a-f]{12}$/);
    expect(await exists(db, v.database)).toBe(false);
    await expect(startVerifying(db)).resolves.toBeUndefined();
  });

  describe("after changes by hand", () => {
    let changed: TestDatabase;
    beforeAll(async () => {
      changed = await freshDb();
      expect((await migrate(changed, ["up"])).code).toBe(0);
      await query(
        changed.url,
        `ALTER TABLE users ADD COLUMN nickname text;
         DROP INDEX idx_users_key_versions;
         CREATE OR REPLACE FUNCTION kms_audit_events_append_only() RETURNS trigger
           LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
      );
    });

    const expected = [
      {
        change: "extra",
        kind: "column",
        name: "users.nickname",
        message:
          "column users.nickname exists in the database but not in the migrations (added by hand?): ALTER TABLE users ADD COLUMN nickname text",
      },
      {
        change: "missing",
        kind: "index",
        name: "idx_users_key_versions",
        message:
          "index idx_users_key_versions is missing (the migrations create it: CREATE INDEX idx_users_key_versions ON public.users USING gin (key_versions))",
      },
      {
        change: "changed",
        kind: "function",
        name: "kms_audit_events_append_only()",
        message: expect.stringMatching(
          /^function kms_audit_events_append_only\(\) differs from the migrations' definition \(replaced by hand\?\): line 4 is "AS \$function\$ BEGIN RETURN NEW; END \$function\$" in the database/,
        ) as unknown as string,
      },
    ];

    it("each is named, and the exit is 1", async () => {
      const run = await migrate(changed, ["verify"]);
      expect(run.code, run.output).toBe(1);
      expect(run.stdout).toContain(`error: ${expected[0]!.message}\n`);
      expect(run.stdout).toContain(`error: ${expected[1]!.message}\n`);
      expect(run.stdout).toMatch(
        /error: function kms_audit_events_append_only\(\) differs from the migrations' definition/,
      );
      expect(run.stdout).toContain(
        "inconsistent: 3 difference(s) between the schema and the applied migrations",
      );
    });

    it("--json lists the same differences", async () => {
      const run = await migrate(changed, ["verify", "--json"]);
      expect(run.code, run.output).toBe(1);
      const v = JSON.parse(run.stdout) as Verification;
      expect(v.consistent).toBe(false);
      expect(v.differences).toMatchObject(expected);
      expect(v.differences).toHaveLength(3);
      expect(await exists(changed, v.database)).toBe(false);
    });

    it("the server's verify start-up mode refuses to start, naming them", async () => {
      await expect(startVerifying(changed)).rejects.toThrow(
        /^migrate: verify: the schema is not the one the applied migrations make: column users\.nickname exists .*; index idx_users_key_versions is missing .*; function kms_audit_events_append_only\(\) differs/,
      );
    });
  });

  it("compares only the applied migrations: a pending one is counted, not compared", async () => {
    const dir = folder({ "000091_pending.up.sql": "CREATE TABLE later (id int);\n" });
    const run = await migrate(db, ["verify", "--json", "--dir", dir]);
    expect(run.code, run.output).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      consistent: true,
      replayed: projectNames.length,
      pending: 1,
    });
  });

  it("up --verify checks after applying: exit 0 when consistent, 1 (with the report) when not", async () => {
    const target = await freshDb();
    const first = await migrate(target, ["up", "--verify"]);
    expect(first.code, first.output).toBe(0);
    expect(first.stdout).toMatch(
      new RegExp(
        `applied {2}${projectNames.at(-1)} .*\\nschema: ${projectNames.length} applied`,
        "s",
      ),
    );
    expect(first.stdout).toContain("consistent: the schema is the one the applied migrations make");
    expect(first.stdout).toContain("data: not checked: give -conf with the server's config");
    await query(target.url, "ALTER TABLE users ADD COLUMN nickname text");
    const dir = folder({ "000091_later.up.sql": "CREATE TABLE later (id int);\n" });
    const second = await migrate(target, ["up", "--verify", "--json", "--dir", dir]);
    expect(second.code, second.output).toBe(1);
    const r = JSON.parse(second.stdout) as { done: { name: string }[]; verify: Verification };
    expect(r.done.map((s) => s.name)).toEqual(["000091_later"]);
    expect(r.verify).toMatchObject({
      consistent: false,
      replayed: projectNames.length + 1,
      differences: [{ change: "extra", kind: "column", name: "users.nickname" }],
    });
    const refused = await migrate(target, ["up", "--verify", "--dry-run"]);
    expect(refused.code).toBe(2);
    expect(refused.output).toContain("--verify checks what up applied");
  });

  it("up --verify stopped by SIGTERM during the replay: the up's report stands, the copy is dropped, exit 143", async () => {
    const target = await freshDb();
    expect((await migrate(target, ["up"])).code).toBe(0);
    const dir = folder({
      "000091_waits.up.sql": sleeperInCopy(599),
    });
    const proc = spawnMigrate(["up", "--verify", "--dir", dir], {
      env: { DATABASE_URL: target.url },
    });
    let copy = "";
    try {
      copy = await replayingInCopy(target, 599);
      proc.child.kill("SIGTERM");
      expect(await proc.exited, proc.output()).toBe(143);
    } finally {
      proc.child.kill("SIGKILL");
    }
    await expect.poll(() => proc.output()).toMatch(/replaying the applied files/);
    expect(proc.output()).toMatch(/^applied {2}000091_waits/m);
    expect(proc.output()).toContain(
      "applied, but could not verify the schema: interrupted by SIGTERM while replaying the applied files",
    );
    const names = await query<{ name: string }>(target.url, "SELECT name FROM pgmigrations");
    expect(names.map((r) => r.name)).toContain("000091_waits");
    expect(copy).toMatch(/^migrate_rehearsal_/);
    expect(await exists(target, copy)).toBe(false);
    expect(
      await query(
        target.url,
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1",
        [copy],
      ),
    ).toEqual([{ n: 0 }]);
  });

  it("verify stopped by SIGTERM during the replay: the copy is dropped, exit 143", async () => {
    const target = await freshDb();
    const dir = folder({
      "000091_waits.up.sql": sleeperInCopy(597),
    });
    expect((await migrate(target, ["up", "--dir", dir])).code).toBe(0);
    const proc = spawnMigrate(["verify", "--dir", dir], { env: { DATABASE_URL: target.url } });
    let copy = "";
    try {
      copy = await replayingInCopy(target, 597);
      proc.child.kill("SIGTERM");
      expect(await proc.exited, proc.output()).toBe(143);
    } finally {
      proc.child.kill("SIGKILL");
    }
    await expect
      .poll(() => proc.output())
      .toContain("interrupted by SIGTERM while replaying the applied files");
    expect(await exists(target, copy)).toBe(false);
  }, 120_000);

  describe("every kind of object it compares", () => {
    // One file making each kind: replayed, it must read back identical (no
    // false alarm on this server's version), and a change to each is named.
    const kinds = folder(
      {
        "000001_kinds.up.sql": `CREATE SCHEMA audit;
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE DOMAIN posint AS integer NOT NULL DEFAULT 1 CHECK (VALUE > 0);
CREATE TABLE people (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text COLLATE "C" NOT NULL UNIQUE,
  m mood DEFAULT 'ok',
  n posint,
  total numeric(10,2) GENERATED ALWAYS AS (n * 2) STORED
);
CREATE TABLE audit.events (id serial PRIMARY KEY, person bigint REFERENCES people (id) ON DELETE CASCADE);
CREATE TABLE parts (k int NOT NULL, v text) PARTITION BY RANGE (k);
CREATE TABLE parts_1 PARTITION OF parts FOR VALUES FROM (0) TO (100);
CREATE INDEX parts_k ON parts (k);
CREATE UNLOGGED TABLE scratchpad (x int);
CREATE TABLE kids (toy text) INHERITS (people);
CREATE SEQUENCE counter AS integer INCREMENT 5 START 10 CACHE 2 CYCLE;
CREATE VIEW people_names AS SELECT name FROM people WHERE n > 1;
CREATE MATERIALIZED VIEW people_count AS SELECT count(*) AS c FROM people;
CREATE INDEX people_count_c ON people_count (c);
CREATE FUNCTION add(a int, b int DEFAULT 1) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
CREATE PROCEDURE noop() LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE AGGREGATE my_sum(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0');
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER people_touch BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION touch();
ALTER TABLE people ENABLE ROW LEVEL SECURITY;
`,
        "000001_kinds.down.sql": "",
      },
      { project: false },
    );

    it("a database made by them is consistent; one changed by hand is not, each change named", async () => {
      const target = await freshDb();
      expect((await migrate(target, ["up", "--dir", kinds])).code).toBe(0);
      const clean = await migrate(target, ["verify", "--json", "--dir", kinds]);
      expect(clean.code, clean.output).toBe(0);
      expect(JSON.parse(clean.stdout)).toMatchObject({ consistent: true, differences: [] });
      await query(
        target.url,
        `ALTER TYPE mood ADD VALUE 'happy';
         ALTER TABLE people DISABLE ROW LEVEL SECURITY;
         ALTER TABLE scratchpad SET LOGGED;
         ALTER SEQUENCE counter INCREMENT 1;
         CREATE OR REPLACE VIEW people_names AS SELECT name FROM people WHERE n > 2;
         ALTER TABLE people DISABLE TRIGGER people_touch;
         ALTER TABLE audit.events DROP CONSTRAINT events_person_fkey;
         DROP MATERIALIZED VIEW people_count;
         CREATE SCHEMA extra`,
      );
      const run = await migrate(target, ["verify", "--json", "--dir", kinds]);
      expect(run.code, run.output).toBe(1);
      const v = JSON.parse(run.stdout) as Verification;
      expect(v.differences.map((d) => `${d.change} ${d.kind} ${d.name}`)).toEqual([
        "extra schema extra",
        "changed type mood",
        "changed table people",
        "changed table scratchpad",
        "missing constraint audit.events.events_person_fkey",
        "changed sequence counter",
        "changed view people_names",
        "missing materialized view people_count",
        "changed trigger people.people_touch",
      ]);
      expect(v.differences.map((d) => d.message)).toContain(
        "sequence counter: increment is 1 in the database, 5 in the migrations",
      );
    });
  });

  it("an unreachable database: exit 2, said so", async () => {
    const run = await migrate(db, ["verify", "--connect-timeout", "2s"], {
      env: { DATABASE_URL: "postgres://postgres@127.0.0.1:1/nowhere" },
    });
    expect(run.code, run.output).toBe(2);
    expect(run.output).toMatch(/could not verify the schema: .*unreachable/);
    const json = await migrate(db, ["verify", "--json", "--connect-timeout", "2s"], {
      env: { DATABASE_URL: "postgres://postgres@127.0.0.1:1/nowhere" },
    });
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ exitCode: 2 });
  });
});
