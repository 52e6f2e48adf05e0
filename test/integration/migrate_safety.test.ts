import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migratorOptions } from "../../internal/migrate/options.js";
import { migrateOnStart } from "../../internal/migrate/startup.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { catalogSnapshot, query } from "../helpers/catalog.js";
import type { TestDatabase } from "../helpers/db.js";
import { migrationFixtures, projectNames } from "../helpers/migrations.js";
import { runMigrate } from "../helpers/process.js";

const { freshDb, folder, migrate } = migrationFixtures();

describe("operator input", () => {
  let db: TestDatabase;
  let before: string[];
  beforeAll(async () => {
    db = await freshDb();
    expect((await migrate(db, ["up"])).code).toBe(0);
    before = await catalogSnapshot(db.url, { includeMigrationTable: true });
  });

  it.each([
    [["down", "0"], '"0"'],
    [["down", "abc"], '"abc"'],
    [["redo", "0"], '"0"'],
    [["redo", "abc"], '"abc"'],
    [["up", "abc"], '"abc"'],
    [["up", "all"], '"all"'],
    [["up", "0"], '"0"'],
    [["up", "1.5"], '"1.5"'],
    [["down", "-1"], "-1"],
    [["up", "--backup-timeout", "-1s"], "--backup-timeout -1s: negative"],
    [["down", ""], '""'],
    [["down", "2", "--all"], "--all"],
    [["redo", "--all"], "all"],
    [["down", "--lock-wait", "soon"], "--lock-wait soon"],
    [["up", "--connect-timeout", "0s"], "--connect-timeout 0s"],
    [["up", "--statement-timeout", "9999h"], "--statement-timeout 9999h"],
    [["baseline", "v1"], "v1"],
    [["sideways"], "sideways"],
    [
      ["up", "--dir", "/nonexistent/migrations"],
      "--dir /nonexistent/migrations: no such directory",
    ],
    [["status", "--json", "--json"], "--json given more than once"],
    [["up", "--dry-run", "--dryRun"], "--dry-run given more than once"],
  ])("%j exits 2 naming %s, and changes nothing", async (args, named) => {
    const run = await migrate(db, args);
    expect(run.code, run.output).toBe(2);
    expect(run.output).toContain(named);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual(before);
  });

  it("down --all is the explicit way to revert everything", async () => {
    const other = await freshDb();
    expect((await migrate(other, ["up"])).code).toBe(0);
    const run = await migrate(other, ["down", "--all"]);
    expect(run.code, run.output).toBe(0);
    expect([...run.stdout.matchAll(/^reverted (\w+)/gm)].map((m) => m[1])).toEqual(
      projectNames.toReversed(),
    );
  });
});

describe("which folder", () => {
  it("an empty --dir (an unset shell variable) exits 2 and applies nothing", async () => {
    const db = await freshDb();
    for (const [args, named] of [
      [["up", "--dir", ""], "--dir is empty"],
      [["up", "--dir=  "], "--dir is empty"],
      [["up", "--dir"], "'--dir <dir>' argument missing"],
    ] as const) {
      const run = await migrate(db, [...args]);
      expect(run.code, run.output).toBe(2);
      expect(run.output).toContain(named);
    }
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
  });

  it("status exits 1 when it reports an error, 0 when it reports none", async () => {
    const db = await freshDb();
    const dir = folder();
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    expect((await migrate(db, ["status", "--dir", dir])).code).toBe(0);
    const first = join(dir, `${projectNames[0]}.up.sql`);
    writeFileSync(first, `${readFileSync(first, "utf8")}\n-- edited\n`);
    const run = await migrate(db, ["status", "--dir", dir]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^error: .* was edited after it was applied/m);
    expect((await migrate(db, ["status", "--json", "--dir", dir])).code).toBe(1);
  });
});

describe("which database", () => {
  it("none named: exit 2 naming all three ways, even in production", async () => {
    const run = await runMigrate(["up"], {
      env: { DATABASE_URL: undefined, APP_ENV: "production" },
    });
    expect(run.code).toBe(2);
    for (const way of ["--database-url", "DATABASE_URL", "data.database.source"])
      expect(run.output).toContain(way);
  });

  it("a URL without host or database is refused, whatever PG* says", async () => {
    const db = await freshDb();
    const url = new URL(db.url);
    const env = {
      DATABASE_URL: undefined,
      PGHOST: url.hostname,
      PGPORT: url.port,
      PGDATABASE: db.name,
      PGUSER: url.username,
      PGPASSWORD: decodeURIComponent(url.password),
    };
    for (const bad of ["postgres://", `postgres://${url.hostname}:${url.port}`, "nonsense"]) {
      const run = await runMigrate(["up", "--database-url", bad], { env });
      expect(run.code, run.output).toBe(2);
      expect(run.output).toMatch(/database URL/);
    }
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
  });

  it("--embedded beside another database is ambiguous: exit 2", async () => {
    const db = await freshDb();
    const run = await migrate(db, ["status", "--embedded"]);
    expect(run.code).toBe(2);
    expect(run.output).toMatch(/--embedded and DATABASE_URL both name a database/);
  });
});

describe("a database that never answers", () => {
  let server: Server;
  let port: number;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    // Accepts the TCP connection, then says nothing, ever.
    server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  // 1 from a command that only looks means it found something: one that
  // could not look says 2; a command that changes the schema failed: 1.
  it.each([
    [["status"], 2],
    [["validate"], 2],
    [["lint", "--sizes"], 2],
    [["plan"], 2],
    [["up", "--rehearse"], 2],
    [["up", "--dry-run"], 2],
    [["up"], 1],
    [["down"], 1],
  ])("%j gives exit %i after --connect-timeout, naming the wait", async (command, code) => {
    const run = await runMigrate(
      [
        ...command,
        "--connect-timeout",
        "1s",
        "--database-url",
        `postgres://u@127.0.0.1:${port}/db`,
      ],
      { env: { DATABASE_URL: undefined } },
    );
    expect(run.code, run.output).toBe(code);
    expect(run.output).toContain(`database 127.0.0.1:${port}/db did not answer within 1 s`);
  });

  it("honours the URL's connect_timeout", async () => {
    const run = await runMigrate(["up"], {
      env: { DATABASE_URL: `postgres://u@127.0.0.1:${port}/db?connect_timeout=1` },
    });
    expect(run.code).toBe(1);
    expect(run.output).toContain("did not answer within 1 s");
  });
});

describe("time zones", () => {
  it("runs under two TimeZone settings revert in applied order and report UTC", async () => {
    const db = await freshDb();
    const dir = folder({
      "000090_later.up.sql":
        "CREATE TABLE later_one AS SELECT current_setting('TimeZone') AS tz, '2025-01-01 00:00'::timestamptz AS midnight;\n",
      "000090_later.down.sql": "DROP TABLE later_one;\n",
    });
    const withZone = (zone: string) => {
      const url = new URL(db.url);
      url.searchParams.set("options", `-c TimeZone=${zone}`);
      return { DATABASE_URL: url.toString() };
    };
    // East of UTC first, then far west: local clocks run backwards between the runs.
    const first = await runMigrate(["up", "--dir", dir, String(projectNames.length)], {
      env: withZone("Pacific/Kiritimati"),
    });
    expect(first.code, first.output).toBe(0);
    const second = await runMigrate(["up", "--dir", dir], { env: withZone("Pacific/Pago_Pago") });
    expect(second.code, second.output).toBe(0);

    // The migration's own SQL runs in the session's zone, as under psql.
    expect(
      await query(
        db.url,
        "SELECT tz, to_char(midnight AT TIME ZONE 'Pacific/Pago_Pago', 'HH24:MI') AS local FROM later_one",
      ),
    ).toEqual([{ tz: "Pacific/Pago_Pago", local: "00:00" }]);
    const status = await runMigrate(["status", "--json", "--dir", dir], {
      env: withZone("America/Anchorage"),
    });
    const { migrations } = JSON.parse(status.stdout) as {
      migrations: { name: string; runOn: string }[];
    };
    for (const m of migrations) {
      expect(Math.abs(Date.parse(m.runOn) - Date.now())).toBeLessThan(10 * 60_000);
      expect(m.runOn).toMatch(/Z$/);
    }
    const down = await runMigrate(["down", "--dir", dir], { env: withZone("Asia/Kolkata") });
    expect(down.code, down.output).toBe(0);
    expect(down.stdout).toMatch(/^reverted 000090_later/m);
    expect(await query(db.url, "SELECT to_regclass('later_one') AS t")).toEqual([{ t: null }]);
  });
});

describe("concurrent index builds", () => {
  it("an interrupted unique build is reported everywhere, rebuilt on rerun, and then refuses duplicates", async () => {
    const db = await freshDb();
    const emailIndex = projectNames.findIndex((n) => n.includes("email_hash_unique"));
    expect((await migrate(db, ["up", String(emailIndex)])).code).toBe(0);

    // A writer holds the table: the build's wait hits lock_timeout after its
    // catalog entry was committed, leaving an INVALID index.
    const writer = new pg.Client({ connectionString: db.url });
    await writer.connect();
    await writer.query("BEGIN; LOCK TABLE users IN ROW EXCLUSIVE MODE");
    const interrupted = await migrate(db, ["up", "--lock-timeout", "500ms", "--no-retry"]);
    await writer.query("COMMIT");
    await writer.end();
    expect(interrupted.code).toBe(1);
    expect(interrupted.stdout).toContain(`FAILED   ${projectNames[emailIndex]} (up) at `);
    expect(interrupted.stdout).toMatch(/SQLSTATE 55P03/);
    expect(
      await query(
        db.url,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_users_email_hash_unique'::regclass",
      ),
    ).toEqual([{ indisvalid: false }]);

    const validate = await migrate(db, ["validate"]);
    expect(validate.code).toBe(1);
    expect(validate.stdout).toMatch(
      /index public\.idx_users_email_hash_unique on public\.users is INVALID/,
    );
    const status = await migrate(db, ["status", "--json"]);
    expect(JSON.parse(status.stdout).problems).toContainEqual(
      expect.objectContaining({
        kind: "invalid-index",
        name: "public.idx_users_email_hash_unique",
      }),
    );
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const silent = createLogger({ level: "silent", format: "json" });
      await expect(
        migrateOnStart("check", migratorOptions(undefined, db.url, silent), pool),
      ).rejects.toThrow(/idx_users_email_hash_unique .* is INVALID/);
    } finally {
      await pool.end();
    }

    const rerun = await migrate(db, ["up"]);
    expect(rerun.code, rerun.output).toBe(0);
    expect(rerun.output).toMatch(/dropped an INVALID index left by an interrupted build/);
    expect((await migrate(db, ["validate"])).code).toBe(0);
    const insert =
      "INSERT INTO users (username, password_hash, email_hash) VALUES ($1, 'x', 'same-hash')";
    await query(db.url, insert, ["first"]);
    await expect(query(db.url, insert, ["second"])).rejects.toThrow(/duplicate key/);
  });

  it("a build on a table that already has an unrelated INVALID index succeeds, and the old one stays reported", async () => {
    const db = await freshDb();
    await query(db.url, "CREATE TABLE w (a int, b int); INSERT INTO w VALUES (1, 1), (1, 2)");
    await expect(
      query(db.url, "CREATE UNIQUE INDEX CONCURRENTLY w_a_unique ON w (a)"),
    ).rejects.toThrow(/could not create unique index/);
    const dir = folder(
      {
        "1_w_b.up.sql": "CREATE INDEX CONCURRENTLY w_b ON w (b);\n",
        "1_w_b.down.sql": "DROP INDEX CONCURRENTLY w_b;\n",
      },
      { project: false },
    );
    const up = await migrate(db, ["up", "--dir", dir]);
    expect(up.code, up.output).toBe(0);
    const validate = await migrate(db, ["validate", "--dir", dir]);
    expect(validate.code).toBe(1);
    expect(validate.stdout).toMatch(/index public\.w_a_unique on public\.w is INVALID/);
  });
});

describe("statement by statement", () => {
  it("a failure names the statement that failed among identical ones, and what stays applied", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        "1_twice.up.sql":
          "-- migrate:no-transaction\nCREATE TABLE u (id int PRIMARY KEY);\nINSERT INTO u VALUES (1);\nINSERT INTO u VALUES (1);\n",
        "1_twice.down.sql": "DROP TABLE u;\n",
      },
      { project: false },
    );
    const run = await migrate(db, ["up", "--dir", dir, "--json"]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout).failed).toMatchObject({
      code: "23505",
      transactional: false,
      statementsApplied: 2,
    });
    expect(JSON.parse(run.stdout).failed.at).toMatch(/1_twice\.up\.sql:4$/);
    expect(await query(db.url, "SELECT count(*)::int AS n FROM u")).toEqual([{ n: 1 }]);
  });
});

describe("transaction control in a file", () => {
  it("a file wrapped whole in BEGIN … COMMIT runs in our transaction; any other is refused before anything runs", async () => {
    const db = await freshDb();
    const wrapped = folder({
      "000090_wrapped.up.sql": "BEGIN;\nCREATE TABLE wrapped (id int);\nCOMMIT;\n",
      "000090_wrapped.down.sql": "BEGIN;\nDROP TABLE wrapped;\nEND;\n",
    });
    const ok = await migrate(db, ["up", "--dir", wrapped]);
    expect(ok.code, ok.output).toBe(0);
    expect((await migrate(db, ["redo", "--dir", wrapped])).code).toBe(0);
    const before = await catalogSnapshot(db.url, { includeMigrationTable: true });
    const rows = await query(db.url, "SELECT name FROM pgmigrations ORDER BY id");

    const mixed = folder({
      "000090_wrapped.up.sql": "BEGIN;\nCREATE TABLE wrapped (id int);\nCOMMIT;\n",
      "000090_wrapped.down.sql": "BEGIN;\nDROP TABLE wrapped;\nEND;\n",
      "000091_mixed.up.sql": "CREATE TABLE a (id int);\nCOMMIT;\nCREATE TABLE b (id int);\n",
      "000091_mixed.down.sql": "DROP TABLE IF EXISTS b, a;\n",
    });
    const refused = await migrate(db, ["up", "--dir", mixed]);
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/000091_mixed\.up\.sql:2: transaction control \(COMMIT\)/);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual(before);
    expect(await query(db.url, "SELECT name FROM pgmigrations ORDER BY id")).toEqual(rows);
  });
});

describe("SET TRANSACTION", () => {
  it("as a file's first statement applies to the migration's transaction, wrapped or not", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        "1_iso.up.sql":
          "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;\nCREATE TABLE iso AS SELECT current_setting('transaction_isolation') AS level;\n",
        "1_iso.down.sql": "DROP TABLE iso;\n",
        "2_wrapped.up.sql":
          "BEGIN;\nSET TRANSACTION ISOLATION LEVEL REPEATABLE READ;\nSET TRANSACTION READ WRITE;\nINSERT INTO iso SELECT current_setting('transaction_isolation');\nCOMMIT;\n",
        "2_wrapped.down.sql": "DELETE FROM iso WHERE level = 'repeatable read';\n",
      },
      { project: false },
    );
    const run = await migrate(db, ["up", "--dir", dir]);
    expect(run.code, run.output).toBe(0);
    expect(await query(db.url, "SELECT level FROM iso ORDER BY level DESC")).toEqual([
      { level: "serializable" },
      { level: "repeatable read" },
    ]);
    expect((await migrate(db, ["validate", "--dir", dir])).code).toBe(0);
  });
});

describe("results", () => {
  it("names the line of a failing statement that PostgreSQL gives no position for", async () => {
    const db = await freshDb();
    const dir = folder({
      "000090_dup.up.sql":
        "CREATE TABLE dup (id int);\n-- again:\nSELECT 1;\nCREATE TABLE dup (id int);\n",
      "000090_dup.down.sql": "DROP TABLE dup;\n",
    });
    const run = await migrate(db, ["up", "--dir", dir]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /^FAILED {3}000090_dup \(up\) at .*000090_dup\.up\.sql:4: relation "dup" already exists \[SQLSTATE 42P07\]$/m,
    );
    expect(await query(db.url, "SELECT to_regclass('dup') AS t")).toEqual([{ t: null }]);
  });

  it("on a partial failure, lists what was applied with durations, then the failure with file:line, message and SQLSTATE", async () => {
    const db = await freshDb();
    const dir = folder({
      "000090_one.up.sql": "CREATE TABLE one_done (id int);\n",
      "000090_one.down.sql": "DROP TABLE one_done;\n",
      "000091_two.up.sql":
        "CREATE TABLE two_done (id int);\n\nINSERT INTO two_done VALUES ('x');\n",
      "000091_two.down.sql": "DROP TABLE two_done;\n",
      "000092_three.up.sql": "CREATE TABLE three_done (id int);\n",
      "000092_three.down.sql": "DROP TABLE three_done;\n",
    });
    const run = await migrate(db, ["up", "--dir", dir]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/^applied {2}000090_one \(\d+ ms\)$/m);
    expect(run.stdout).toMatch(
      /^FAILED {3}000091_two \(up\) at .*000091_two\.up\.sql:3: invalid input syntax for type integer: "x" \[SQLSTATE 22P02\]$/m,
    );
    expect(run.stdout).toMatch(/rolled back: nothing of it was applied/);
    expect(run.stdout).not.toContain("000092_three");

    await migrate(db, ["down", "--dir", dir]);
    const json = await migrate(db, ["up", "--dir", dir, "--json"]);
    expect(json.code).toBe(1);
    const report = JSON.parse(json.stdout) as {
      done: { name: string; ms: number }[];
      failed: { name: string; at: string; code: string; message: string; transactional: boolean };
    };
    expect(report.done.map((d) => d.name)).toEqual(["000090_one"]);
    expect(report.done[0]!.ms).toBeGreaterThanOrEqual(0);
    expect(report.failed).toMatchObject({
      name: "000091_two",
      code: "22P02",
      transactional: true,
    });
    expect(report.failed.at).toMatch(/000091_two\.up\.sql:3$/);
  });
});
