import { describe, expect, it } from "vitest";
import pg from "pg";
import { run } from "../../internal/migrate/runner.js";
import { migrateOnStart } from "../../internal/migrate/startup.js";
import { migratorOptions } from "../../internal/migrate/options.js";
import { query } from "../helpers/catalog.js";
import { migrationFixtures } from "../helpers/migrations.js";

// Expand and contract from the command line: each phase takes its own files,
// status says the database is mid-change, and a contract waits for the live
// instances of the previous release (instances.ts) unless forced.

const { freshDb, folder, migrate } = migrationFixtures();

const FILES = {
  "1_people.up.sql": "CREATE TABLE people (id serial PRIMARY KEY, full_name text);\n",
  "1_people.down.sql": "DROP TABLE people;\n",
  "2_nick_expand.up.sql": "-- migrate:phase expand\nALTER TABLE people ADD COLUMN nick text;\n",
  "2_nick_expand.down.sql": "ALTER TABLE people DROP COLUMN nick;\n",
  "3_nick_contract.up.sql":
    '-- migrate:phase contract 2\n-- migrate:allow ban-drop-column "the release reading it has stopped"\nALTER TABLE people DROP COLUMN full_name;\n',
  "3_nick_contract.down.sql": "ALTER TABLE people ADD COLUMN full_name text;\n",
};

const applied = async (url: string) =>
  (await query(url, "SELECT name FROM pgmigrations ORDER BY id")).map((r) => r.name);

const instance = (
  url: string,
  host: string,
  schema: number,
  expires = "now() + interval '1 minute'",
) =>
  query(
    url,
    `INSERT INTO migrate_instances (id, host, pid, release, schema_version, started_at, last_seen, expires_at)
     VALUES ('${host}', '${host}', 4242, '0.9.0', ${schema}, now(), now(), ${expires})`,
  );

describe("migrate up --phase", () => {
  it("expand and contract each take their own files, in order, saying where they stopped", async () => {
    const db = await freshDb();
    const dir = folder(FILES, { project: false });
    const first = await migrate(db, ["up", "--dir", dir, "--phase", "expand"]);
    expect(first.code, first.output).toBe(0);
    expect(first.stdout).toMatch(
      /stopped before 1_people: it is not marked -- migrate:phase expand/,
    );
    expect(await migrate(db, ["up", "1", "--dir", dir])).toMatchObject({ code: 0 });

    const early = await migrate(db, ["up", "--dir", dir, "--phase", "contract", "--json"]);
    expect(early.code, early.output).toBe(0);
    expect(JSON.parse(early.stdout)).toMatchObject({
      done: [],
      held: { name: "2_nick_expand", reason: expect.stringMatching(/it is an expand/) as unknown },
    });

    const expand = await migrate(db, ["up", "--dir", dir, "--phase", "expand", "--json"]);
    expect(expand.code, expand.output).toBe(0);
    expect(JSON.parse(expand.stdout)).toMatchObject({
      done: [{ name: "2_nick_expand" }],
      held: {
        name: "3_nick_contract",
        reason: expect.stringMatching(/it is a contract/) as unknown,
      },
    });

    const status = await migrate(db, ["status", "--dir", dir]);
    expect(status.stdout).toMatch(/2_nick_expand \[expand\]$/m);
    expect(status.stdout).toMatch(/3_nick_contract \[contract\]$/m);
    expect(status.stdout).toMatch(
      /^mid-change: 2_nick_expand is expanded and its contract 3_nick_contract pending/m,
    );
    const json = JSON.parse((await migrate(db, ["status", "--dir", dir, "--json"])).stdout) as {
      midChange: unknown;
      migrations: { phase?: string }[];
    };
    expect(json.midChange).toEqual([{ expand: "2_nick_expand", contract: "3_nick_contract" }]);
    expect(json.migrations.map((m) => m.phase)).toEqual([undefined, "expand", "contract"]);

    const contract = await migrate(db, ["up", "--dir", dir, "--phase", "contract"]);
    expect(contract.code, contract.output).toBe(0);
    expect(await applied(db.url)).toEqual(["1_people", "2_nick_expand", "3_nick_contract"]);
  });

  it("a rehearsal takes the phase's files only", async () => {
    const db = await freshDb();
    const dir = folder(FILES, { project: false });
    expect((await migrate(db, ["up", "1", "--dir", dir])).code).toBe(0);
    const r = await migrate(db, [
      "up",
      "--rehearse=target",
      "--phase",
      "expand",
      "--json",
      "--dir",
      dir,
    ]);
    expect(r.code, r.output).toBe(0);
    const traced = (JSON.parse(r.stdout) as { migrations: { name: string }[] }).migrations;
    expect(traced.map((m) => m.name)).toEqual(["2_nick_expand"]);
  });

  it("refuses a misspelt or empty phase before connecting", async () => {
    const db = await freshDb();
    for (const phase of ["expnad", "", "CONTRACT"]) {
      const r = await migrate(db, [
        "up",
        "--dir",
        folder(FILES, { project: false }),
        "--phase",
        phase,
      ]);
      expect(r.code, r.output).toBe(2);
      expect(r.output).toMatch(/--phase/);
    }
    expect(await query(db.url, "SELECT to_regclass('pgmigrations') AS t")).toEqual([{ t: null }]);
  });
});

describe("a contract", () => {
  it("waits while a live instance needs the schema before it, names it, and applies nothing", async () => {
    const db = await freshDb();
    const dir = folder(FILES, { project: false });
    expect((await migrate(db, ["up", "2", "--dir", dir])).code).toBe(0);
    await instance(db.url, "old-pod", 2);
    await instance(db.url, "new-pod", 3);

    const refused = await migrate(db, ["up", "--dir", dir, "--json"]);
    expect(refused.code, refused.output).toBe(1);
    expect(refused.output).toMatch(
      /3_nick_contract is a contract and 1 live instance\(s\) still need the schema before it: old-pod pid 4242 \(release 0\.9\.0, schema 000002, last seen \S+Z\)/,
    );
    expect(refused.output).not.toMatch(/new-pod/);
    expect(JSON.parse(refused.stdout)).toMatchObject({
      exitCode: 1,
      waiting: [
        { migration: "3_nick_contract", instances: [{ host: "old-pod", schemaVersion: "2" }] },
      ],
    });
    expect(await applied(db.url)).toEqual(["1_people", "2_nick_expand"]);

    const dry = await migrate(db, ["up", "--dir", dir, "--dry-run"]);
    expect(dry.code).toBe(1);
    expect(dry.stdout).toMatch(
      /-- WAITS FOR: a live instance of an older release: old-pod pid 4242/,
    );

    // Its heartbeat expires (a crashed pod): the contract goes ahead.
    await query(
      db.url,
      "UPDATE migrate_instances SET expires_at = now() - interval '1 second' WHERE id = 'old-pod'",
    );
    const after = await migrate(db, ["up", "--dir", dir, "--phase", "contract"]);
    expect(after.code, after.output).toBe(0);
    expect(await applied(db.url)).toEqual(["1_people", "2_nick_expand", "3_nick_contract"]);
  });

  it("goes ahead with --force, logging the instances it may break", async () => {
    const db = await freshDb();
    const dir = folder(FILES, { project: false });
    expect((await migrate(db, ["up", "2", "--dir", dir])).code).toBe(0);
    await instance(db.url, "old-pod", 1);
    const forced = await migrate(db, [
      "up",
      "--dir",
      dir,
      "--phase",
      "contract",
      "--force",
      "--operator",
      "ops",
    ]);
    expect(forced.code, forced.output).toBe(0);
    const log = forced.output.split("\n").find((l) => l.includes("--force"));
    expect(JSON.parse(log!)).toMatchObject({
      level: "warn",
      migration: "3_nick_contract",
      operator: "ops",
      instances: [expect.stringMatching(/^old-pod pid 4242/) as unknown],
    });
  });
});

describe("a server's start-up up", () => {
  const opts = (url: string, dir: string) => ({
    ...migratorOptions(undefined, url, silent),
    dir,
  });

  it("never applies a contract; an unmarked file goes as it always did, with a warning beside an older release", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        ...FILES,
        "4_more.up.sql": "ALTER TABLE people ADD COLUMN more int;\n",
        "4_more.down.sql": "ALTER TABLE people DROP COLUMN more;\n",
      },
      { project: false },
    );
    const first = await run(opts(db.url, dir), { kind: "up", phase: "start" });
    expect(first.done.map((d) => d.name)).toEqual(["1_people", "2_nick_expand"]);
    expect(first.held?.name).toBe("3_nick_contract");

    const other = folder(
      {
        "1_people.up.sql": FILES["1_people.up.sql"],
        "2_more_expand.up.sql": "-- migrate:phase expand\nALTER TABLE people ADD COLUMN x int;\n",
        "3_plain.up.sql": "ALTER TABLE people ADD COLUMN y int;\n",
      },
      { project: false },
    );
    const db2 = await freshDb();
    expect((await run(opts(db2.url, other), { kind: "up", count: 1 })).done).toHaveLength(1);
    await instance(db2.url, "old-pod", 1);
    // Holding it would keep the new instances unready while the old ones
    // wait for them to be ready: it is applied, and the run says so.
    const second = await run(opts(db2.url, other), { kind: "up", phase: "start" });
    expect(second.done.map((d) => d.name)).toEqual(["2_more_expand", "3_plain"]);
    expect(second.held).toBeUndefined();
    expect(second.warnings.join("\n")).toMatch(
      /3_plain is not marked -- migrate:phase expand and 1 instance\(s\) of an older release are alive \(old-pod pid 4242/,
    );

    // A server's start says so in its log.
    const db3 = await freshDb();
    expect((await run(opts(db3.url, other), { kind: "up", count: 1 })).done).toHaveLength(1);
    await instance(db3.url, "old-pod", 1);
    const warned: unknown[] = [];
    const log = {
      debug() {},
      info() {},
      error() {},
      warn: (o: unknown, msg: string) => warned.push([o, msg]),
    } as never;
    const pool = new pg.Pool({ connectionString: db3.url });
    try {
      await migrateOnStart("up", { ...opts(db3.url, other), log }, pool);
    } finally {
      await pool.end();
    }
    expect(JSON.stringify(warned)).toMatch(
      /3_plain is not marked .*old-pod pid 4242.*"migrate: warning"/,
    );
  });
});

const silent = { debug() {}, info() {}, warn() {}, error() {} } as never;
