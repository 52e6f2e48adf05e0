import { readdirSync, rmSync, writeFileSync, appendFileSync } from "node:fs";
import { basename, join } from "node:path";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { catalogSnapshot, query } from "../helpers/catalog.js";
import type { TestDatabase } from "../helpers/db.js";
import { migrationFixtures, projectNames, startupNames } from "../helpers/migrations.js";
import { runMigrate, spawnMigrate, spawnServer } from "../helpers/process.js";
import { testRootKey } from "../helpers/app.js";

const { freshDb, folder: migrationsCopy, migrate } = migrationFixtures();

describe("up, status, down", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDb();
  });

  it("applies everything on an empty database, then reports it applied with matching files", async () => {
    const upRun = await migrate(db, ["up"]);
    expect(upRun.code, upRun.output).toBe(0);
    expect(upRun.stdout).toMatch(/applied\s+000001_init_schema/);
    const status = await migrate(db, ["status", "--json"]);
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout) as {
      migrations: { name: string; state: string; file: string }[];
      pending: number;
    };
    expect(parsed.pending).toBe(0);
    expect(parsed.migrations.map((m) => [m.name, m.state, m.file])).toEqual(
      projectNames.map((n) => [n, "applied", "ok"]),
    );
    const tables = await query<{ t: string }>(
      db.url,
      "SELECT to_regclass('users')::text AS t UNION ALL SELECT to_regclass('kms_key_stats')::text",
    );
    expect(tables.map((r) => r.t)).toEqual(["users", "kms_key_stats"]);
  });

  it("logs each migration with direction, duration and lock wait", async () => {
    const other = await freshDb();
    const run = await migrate(other, ["up", "1"]);
    const line = run.output.split("\n").find((l) => l.includes('"msg":"migration applied"'))!;
    expect(JSON.parse(line)).toMatchObject({ migration: "000001_init_schema", direction: "up" });
    expect(JSON.parse(line)).toHaveProperty("ms");
    expect(JSON.parse(line)).toHaveProperty("lockWaitMs");
  });

  it("down of everything leaves only the bookkeeping tables (pgmigrations, the consents given as history, the instances, the backfill record)", async () => {
    const reverted = await migrate(db, ["down", "--all"]);
    expect(reverted.code, reverted.output).toBe(0);
    expect(await catalogSnapshot(db.url)).toEqual([]);
    const left = await query<{ relname: string }>(
      db.url,
      "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r'",
    );
    expect(left.map((r) => r.relname).sort()).toEqual([
      "migrate_backfills",
      "migrate_consents",
      "migrate_instances",
      "pgmigrations",
    ]);
    expect(await query(db.url, "SELECT * FROM pgmigrations")).toEqual([]);
  });

  it("up -> down -> up gives an identical catalog", async () => {
    expect((await migrate(db, ["up"])).code).toBe(0);
    const first = await catalogSnapshot(db.url);
    expect(first.length).toBeGreaterThan(20);
    expect((await migrate(db, ["down", "--all"])).code).toBe(0);
    expect((await migrate(db, ["up"])).code).toBe(0);
    expect(await catalogSnapshot(db.url)).toEqual(first);
  });

  it("redo reverts and re-applies the last migration", async () => {
    const before = await catalogSnapshot(db.url);
    const run = await migrate(db, ["redo"]);
    expect(run.code, run.output).toBe(0);
    const last = projectNames.at(-1)!;
    expect(run.stdout).toMatch(new RegExp(`reverted ${last}[\\s\\S]*applied\\s+${last}`));
    expect(await catalogSnapshot(db.url)).toEqual(before);
  });
});

describe("--dry-run", () => {
  it.each([["up"], ["down", "1"], ["redo"]])(
    "%s prints the SQL in order and changes nothing",
    async (...args) => {
      const db = await freshDb();
      if (args[0] !== "up") expect((await migrate(db, ["up"])).code).toBe(0);
      const before = await catalogSnapshot(db.url, { includeMigrationTable: true });
      const rowsBefore =
        args[0] === "up"
          ? []
          : await query(db.url, "SELECT name, checksum FROM pgmigrations ORDER BY id");
      const run = await migrate(db, [...args, "--dry-run"]);
      expect(run.code, run.output).toBe(0);
      expect(run.stdout).toMatch(/^-- 0000\d\d_\w+ \((up|down)\) from /m);
      expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual(before);
      if (args[0] !== "up")
        expect(await query(db.url, "SELECT name, checksum FROM pgmigrations ORDER BY id")).toEqual(
          rowsBefore,
        );
    },
  );

  it("up --dry-run lists the pending migrations in the order they would run", async () => {
    const db = await freshDb();
    const run = await migrate(db, ["up", "--dry-run"]);
    const order = [...run.stdout.matchAll(/^-- (\w+) \(up\)/gm)].map((m) => m[1]);
    expect(order).toEqual(projectNames);
  });
});

describe("many migrators at once", () => {
  it("8 `migrate up` processes on an empty database all succeed and apply each migration once", async () => {
    const db = await freshDb();
    const runs = await Promise.all(Array.from({ length: 8 }, () => migrate(db, ["up"])));
    for (const r of runs) expect(r.code, r.output).toBe(0);
    const rows = await query<{ name: string; n: string }>(
      db.url,
      "SELECT name, count(*) AS n FROM pgmigrations GROUP BY name ORDER BY name",
    );
    expect(rows).toEqual(projectNames.map((name) => ({ name, n: "1" })));
    const applied = runs.flatMap((r) =>
      [...r.stdout.matchAll(/^applied\s+(\w+)/gm)].map((m) => m[1]),
    );
    expect(applied.sort()).toEqual(projectNames);
  });

  it("gives up after --lock-wait with a clear message and exit 1 while another holds the lock", async () => {
    const db = await freshDb();
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock(7241865325823964)");
      const run = await migrate(db, ["up", "--lock-wait", "1s"]);
      expect(run.code).toBe(1);
      expect(run.output).toMatch(
        /another migration held the lock for more than 1s; nothing was changed/,
      );
      expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
    } finally {
      await holder.end();
    }
  });
});

describe("failures", () => {
  it("a migration failing halfway leaves the earlier ones applied and nothing of itself, naming file and line", async () => {
    const db = await freshDb();
    const dir = migrationsCopy({
      "000090_half.up.sql":
        "-- creates a table, then fails\nCREATE TABLE half_done (id int);\n\nINSERT INTO half_done VALUES ('not a number');\n",
      "000090_half.down.sql": "DROP TABLE IF EXISTS half_done;\n",
    });
    const run = await migrate(db, ["up", "--dir", dir]);
    expect(run.code).toBe(1);
    expect(run.output).toContain(`000090_half.up.sql:4`);
    expect(run.output).toMatch(/invalid input syntax for type integer/);
    const names = await query<{ name: string }>(
      db.url,
      "SELECT name FROM pgmigrations ORDER BY id",
    );
    expect(names.map((r) => r.name)).toEqual(projectNames);
    expect(await query(db.url, "SELECT to_regclass('half_done') AS t")).toEqual([{ t: null }]);
    const again = await migrate(db, ["status", "--dir", dir]);
    expect(again.stdout).toMatch(/pending\s.*000090_half/);
  });

  it("a syntax error is reported from the file before anything runs", async () => {
    const db = await freshDb();
    const dir = migrationsCopy({
      "000090_typo.up.sql": "SELECT 1;\nCREATE TABL oops (id int);\n",
      "000090_typo.down.sql": "SELECT 1;\n",
    });
    const run = await migrate(db, ["up", "--dir", dir]);
    expect(run.code).toBe(1);
    expect(run.output).toMatch(/000090_typo\.up\.sql:2: syntax error at or near "TABL"/);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
  });

  it("a process killed with SIGKILL in the middle of a slow migration leaves a state a plain rerun fixes", async () => {
    const db = await freshDb();
    const dir = migrationsCopy({
      "000090_slow.up.sql": "CREATE TABLE slow_one (id int);\nSELECT pg_sleep(60);\n",
      "000090_slow.down.sql": "DROP TABLE IF EXISTS slow_one;\n",
    });
    const proc = spawnMigrate(["up", "--dir", dir], {
      env: { DATABASE_URL: db.url },
    });
    // Wait until the backend is inside the sleep: the migration is half done.
    for (;;) {
      const rows = await query(
        db.url,
        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'migrate' AND query LIKE '%pg_sleep(60)%' AND state = 'active'",
      );
      if (rows.length > 0) break;
      if (proc.child.exitCode !== null) throw new Error(proc.output());
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.child.kill("SIGKILL");
    await proc.exited;
    const fixed = migrationsCopy({
      "000090_slow.up.sql": "CREATE TABLE slow_one (id int);\n",
      "000090_slow.down.sql": "DROP TABLE IF EXISTS slow_one;\n",
    });
    const rerun = await migrate(db, ["up", "--dir", fixed]);
    expect(rerun.code, rerun.output).toBe(0);
    const names = await query<{ name: string }>(
      db.url,
      "SELECT name FROM pgmigrations ORDER BY id",
    );
    expect(names.map((r) => r.name)).toEqual([...projectNames, "000090_slow"]);
  });
});

describe("checksums", () => {
  it("an applied file edited afterwards fails validate and up, until repair accepts it", async () => {
    const db = await freshDb();
    const dir = migrationsCopy();
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    expect((await migrate(db, ["validate", "--dir", dir])).code).toBe(0);
    appendFileSync(
      join(dir, "000001_init_schema.up.sql"),
      "\nCREATE INDEX idx_sneaky ON users (created_at);\n",
    );
    writeFileSync(join(dir, "000090_next.up.sql"), "CREATE TABLE next_one (id int);\n");
    writeFileSync(join(dir, "000090_next.down.sql"), "DROP TABLE next_one;\n");
    const validate = await migrate(db, ["validate", "--dir", dir]);
    expect(validate.code).toBe(1);
    expect(validate.stdout).toMatch(/000001_init_schema\.up\.sql was edited after it was applied/);
    const up = await migrate(db, ["up", "--dir", dir]);
    expect(up.code).toBe(1);
    expect(await query(db.url, "SELECT to_regclass('next_one') AS t")).toEqual([{ t: null }]);
    expect((await migrate(db, ["repair", "--dir", dir])).code).toBe(0);
    expect((await migrate(db, ["validate", "--dir", dir])).code).toBe(0);
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
  });

  it("a deleted applied file and an out-of-order pending file fail validate", async () => {
    const db = await freshDb();
    const dir = migrationsCopy({
      "000100_later.up.sql": "SELECT 1;\n",
      "000100_later.down.sql": "SELECT 1;\n",
    });
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    writeFileSync(join(dir, "000050_forgotten.up.sql"), "SELECT 1;\n");
    writeFileSync(join(dir, "000050_forgotten.down.sql"), "SELECT 1;\n");
    rmSync(join(dir, "000100_later.up.sql"));
    rmSync(join(dir, "000100_later.down.sql"));
    const run = await migrate(db, ["validate", "--dir", dir]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/000100_later was applied but its file is gone/);
  });

  it("up refuses an out-of-order pending migration unless told to allow it", async () => {
    const db = await freshDb();
    const dir = migrationsCopy({
      "000100_later.up.sql": "SELECT 1;\n",
      "000100_later.down.sql": "SELECT 1;\n",
    });
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    writeFileSync(join(dir, "000050_branch.up.sql"), "CREATE TABLE from_branch (id int);\n");
    writeFileSync(join(dir, "000050_branch.down.sql"), "DROP TABLE from_branch;\n");
    const refused = await migrate(db, ["up", "--dir", dir]);
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(
      /000050_branch\.up\.sql is pending but sorts before the applied 000100_later/,
    );
    const allowed = await migrate(db, ["up", "--dir", dir, "--allow-out-of-order"]);
    expect(allowed.code, allowed.output).toBe(0);
    expect((await migrate(db, ["validate", "--dir", dir])).code).toBe(0);
  });
});

describe("no-transaction migrations", () => {
  it("run CREATE INDEX CONCURRENTLY outside a transaction when marked", async () => {
    const db = await freshDb();
    const dir = migrationsCopy({
      "000090_users_created_at.up.sql":
        "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_created_at ON users (created_at);\n",
      "000090_users_created_at.down.sql":
        "-- migrate:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS idx_users_created_at;\n",
    });
    const run = await migrate(db, ["up", "--dir", dir]);
    expect(run.code, run.output).toBe(0);
    const idx = await query<{ valid: boolean }>(
      db.url,
      "SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'idx_users_created_at'::regclass",
    );
    expect(idx).toEqual([{ valid: true }]);
    expect((await migrate(db, ["down", "--dir", dir])).code).toBe(0);
  });

  it("run a file with CONCURRENTLY outside a transaction by themselves, statement by statement", async () => {
    const db = await freshDb();
    const dir = migrationsCopy({
      "000090_flags.up.sql":
        "CREATE TABLE flags (id int, user_id int);\nCREATE INDEX CONCURRENTLY idx_flags_user ON flags (user_id);\n",
      "000090_flags.down.sql":
        "DROP INDEX CONCURRENTLY IF EXISTS idx_flags_user;\nDROP TABLE flags;\n",
    });
    const dry = await migrate(db, ["up", "--dir", dir, "--dry-run"]);
    expect(dry.stdout).toMatch(
      /000090_flags \(up\) from .*, outside a transaction, statement by statement/,
    );
    const run = await migrate(db, ["up", "--dir", dir]);
    expect(run.code, run.output).toBe(0);
    expect(
      await query(
        db.url,
        "SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = 'idx_flags_user'::regclass",
      ),
    ).toEqual([{ valid: true }]);
    const down = await migrate(db, ["down", "--dir", dir]);
    expect(down.code, down.output).toBe(0);
    expect(await query(db.url, "SELECT to_regclass('flags') AS t")).toEqual([{ t: null }]);
  });
});

describe("create and lint", () => {
  it("create writes a UTC-stamped pair with a header", async () => {
    const dir = migrationsCopy();
    const run = await runMigrate(["create", "add_user_flags", "--dir", dir]);
    expect(run.code, run.output).toBe(0);
    const made = readdirSync(dir)
      .filter((f) => f.includes("add_user_flags"))
      .sort();
    expect(made).toHaveLength(2);
    expect(made[0]).toMatch(/^\d{14}_add_user_flags\.down\.sql$/);
    expect(made[1]).toMatch(/^\d{14}_add_user_flags\.up\.sql$/);
    const bad = await runMigrate(["create", "Add-Flags", "--dir", dir]);
    expect(bad.code).toBe(1);
    expect(bad.output).toMatch(/use lowercase letters, digits and underscores/);
  });

  it("lint passes the project's migrations: 000010's same-file validations carry consent", async () => {
    const run = await runMigrate(["lint", "--json"]);
    expect(run.code).toBe(0);
    const { findings, errors } = JSON.parse(run.stdout) as {
      findings: { rule: string; file: string; consent?: string }[];
      errors: number;
    };
    expect(errors).toBe(0);
    expect(findings.map((f) => [f.rule, basename(f.file), f.consent !== undefined])).toEqual([
      ...Array(3).fill([
        "constraint-missing-not-valid",
        "000010_users_field_key_versions.up.sql",
        true,
      ]),
      ["ban-drop-column", "000020_users_password_hash_contract.up.sql", true],
    ]);
  });

  it("lint catches a planted dangerous migration, each finding with rule, file and line", async () => {
    const dir = migrationsCopy({
      "000090_danger.up.sql": [
        "CREATE INDEX idx_users_created ON users (created_at);",
        "ALTER TABLE users ADD COLUMN age int NOT NULL;",
        "ALTER TABLE users ALTER COLUMN username TYPE varchar(100);",
        "ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0);",
        "ALTER TABLE users DROP COLUMN name_hash;",
        "DROP TABLE kms_data_keys;",
        "CREATE TABLE fresh (id int);",
        "CREATE INDEX idx_fresh ON fresh (id);",
        "",
      ].join("\n"),
    });
    const run = await runMigrate(["lint", "--dir", dir]);
    expect(run.code).toBe(1);
    const file = join(dir, "000090_danger.up.sql");
    for (const [line, rule] of [
      [1, "missing-down"],
      [1, "require-concurrent-index-creation"],
      [2, "adding-required-field"],
      [3, "changing-column-type"],
      [4, "constraint-missing-not-valid"],
      [5, "ban-drop-column"],
      [6, "ban-drop-table"],
    ] as const) {
      expect(run.stdout).toContain(`${file}:${line}: error [${rule}]`);
    }
    expect(run.stdout).not.toContain(":8: error");
  });
});

describe("the server", () => {
  it("with migrate: check refuses to start while a migration is pending", async () => {
    const db = await freshDb();
    expect((await migrate(db, ["up", "1"])).code).toBe(0);
    const dir = migrationsCopy();
    const conf = join(dir, "check.yaml");
    writeFileSync(
      conf,
      `server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" } }\ndata: { database: { source: "${db.url}", migrate: check } }\nkms: { root_key: "${testRootKey}" }\nauth: { enabled: false }\n`,
    );
    const server = spawnServer(["-conf", conf], {
      env: { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined },
    });
    expect(await server.exited).toBe(1);
    expect(server.output()).toMatch(/migrate: check: pending: 000002_create_kms_data_keys/);
  });

  it("with migrate: up applies pending migrations before serving and reports ready", async () => {
    const db = await freshDb();
    const dir = migrationsCopy();
    const conf = join(dir, "up.yaml");
    writeFileSync(
      conf,
      `server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" } }\ndata: { database: { source: "${db.url}", migrate: up } }\nkms: { root_key: "${testRootKey}" }\nauth: { enabled: false }\n`,
    );
    const server = spawnServer(["-conf", conf], {
      env: { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined },
    });
    try {
      const listening = JSON.parse(await server.waitFor(/"msg":"listening/)) as { http: number };
      const ready = await fetch(`http://127.0.0.1:${listening.http}/readyz`);
      expect(await ready.json()).toMatchObject({
        status: "ready",
        checks: { database: "ok", migrations: "ok" },
      });
      const names = await query<{ name: string }>(
        db.url,
        "SELECT name FROM pgmigrations ORDER BY id",
      );
      // All but the contract, which waits for the previous release to stop.
      expect(names.map((r) => r.name)).toEqual(startupNames);
      // The schema falls behind the code while it runs: /readyz says so.
      expect((await migrate(db, ["down"])).code).toBe(0);
      const behind = await fetch(`http://127.0.0.1:${listening.http}/readyz`);
      expect(behind.status).toBe(503);
      expect(await behind.json()).toMatchObject({
        status: "not ready",
        checks: { database: "ok", migrations: `pending: ${startupNames.at(-1)}` },
      });
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  });
});
