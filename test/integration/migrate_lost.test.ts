import { readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { PG_MIGRATE_LOCK_ID } from "../../internal/migrate/seams/node_pg_migrate.js";
import { query, running } from "../helpers/catalog.js";
import { migrationFixtures } from "../helpers/migrations.js";
import { runMigrate, spawnMigrate } from "../helpers/process.js";
import { databaseProxy, type Tap } from "../helpers/proxy.js";

const { freshDb, folder, migrate } = migrationFixtures();

const proxies: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.close();
});

/** A database and a proxy in front of it that applies `tap` to what clients send. */
async function behindProxy(tap: (chunk: Buffer) => Tap) {
  const db = await freshDb();
  const proxy = await databaseProxy(new URL(db.url), { tap });
  proxies.push(proxy);
  return { db, url: proxy.url };
}

const lockHolders = (url: string) =>
  query(
    url,
    "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    [PG_MIGRATE_LOCK_ID % 2 ** 32],
  );

describe("a peer that stops answering mid-query", () => {
  it("outside a transaction: exit 1 naming the stall, what stays applied, and the lock is free", async () => {
    const { db, url } = await behindProxy((c) => (c.includes("stall here") ? "stall" : "forward"));
    const dir = folder(
      {
        "1_stalls.up.sql":
          "-- migrate:no-transaction\nCREATE TABLE IF NOT EXISTS before_stall (id int);\nSELECT 'stall here';\n",
        "1_stalls.down.sql": "DROP TABLE before_stall;\n",
      },
      { project: false },
    );
    const run = await runMigrate(
      ["up", "--dir", dir, "--statement-timeout", "1s", "--connect-timeout", "5s"],
      { env: { DATABASE_URL: url } },
    );
    expect(run.code, run.output).toBe(1);
    expect(run.stdout).toMatch(
      /^FAILED {3}1_stalls \(up\) at .*1_stalls\.up\.sql:3: database .* stopped answering: no reply within 6 s/m,
    );
    expect(run.stdout).toMatch(/outcome unknown/);
    expect(run.stdout).toMatch(/its first 1 statement\(s\) stay applied/);
    expect(await query(db.url, "SELECT to_regclass('before_stall') IS NOT NULL AS t")).toEqual([
      { t: true },
    ]);
    // The stalled session was ended: the lock went with it.
    expect(await lockHolders(db.url)).toEqual([{ n: 0 }]);
    const again = await migrate(db, ["up", "--dir", dir, "--lock-wait", "1s"]);
    expect(again.code, again.output).toBe(0);
    expect(again.stdout).toMatch(/^applied {2}1_stalls/m);
  });

  it("in a transaction: exit 1, and reading back says nothing of it was committed", async () => {
    const { db, url } = await behindProxy((c) => (c.includes("stalled_tx") ? "stall" : "forward"));
    const dir = folder(
      {
        "1_stalled_tx.up.sql": "CREATE TABLE stalled_tx (id int);\n",
        "1_stalled_tx.down.sql": "DROP TABLE stalled_tx;\n",
      },
      { project: false },
    );
    const run = await runMigrate(
      ["up", "--dir", dir, "--statement-timeout", "1s", "--connect-timeout", "5s"],
      { env: { DATABASE_URL: url } },
    );
    expect(run.code, run.output).toBe(1);
    expect(run.stdout).toMatch(/stopped answering/);
    expect(run.stdout).toMatch(
      /reconnected and checked: it is NOT applied: nothing of it was committed/,
    );
    expect(await lockHolders(db.url)).toEqual([{ n: 0 }]);
    expect(await query(db.url, "SELECT count(*)::int AS n FROM pgmigrations")).toEqual([{ n: 0 }]);
  });
});

describe("a connection lost during COMMIT", () => {
  const dir = () =>
    folder(
      {
        "1_lost_commit.up.sql": "CREATE TABLE lost_commit (id int);\n",
        "1_lost_commit.down.sql": "DROP TABLE lost_commit;\n",
      },
      { project: false },
    );
  const atCommit = (verdict: Tap) => (c: Buffer) =>
    c.includes("lost_commit") && c.includes("COMMIT") ? verdict : "forward";

  it("after the server committed: outcome unknown, then read back as applied", async () => {
    const { db, url } = await behindProxy(atCommit("deliver-then-cut"));
    const run = await runMigrate(["up", "--dir", dir()], { env: { DATABASE_URL: url } });
    expect(run.code, run.output).toBe(1);
    expect(run.stdout).toMatch(/outcome unknown/);
    expect(run.stdout).toMatch(/reconnected and checked: it IS applied/);
    expect(run.stdout).not.toMatch(/rolled back/);
    expect(await query(db.url, "SELECT name FROM pgmigrations")).toEqual([
      { name: "1_lost_commit" },
    ]);
    expect((await migrate(db, ["status", "--dir", dir()])).code).toBe(0);
    // Committed after all: no failure is recorded.
    expect(await query(db.url, "SELECT to_regclass('migrate_failures') AS t")).toEqual([
      { t: null },
    ]);
  });

  it("before the server saw it: outcome unknown, then read back as not applied", async () => {
    const { db, url } = await behindProxy(atCommit("cut"));
    const run = await runMigrate(["up", "--dir", dir(), "--json"], { env: { DATABASE_URL: url } });
    expect(run.code, run.output).toBe(1);
    expect(JSON.parse(run.stdout).failed).toMatchObject({
      connectionLost: true,
      outcome: { recorded: false },
    });
    expect(await query(db.url, "SELECT to_regclass('lost_commit') AS t")).toEqual([{ t: null }]);
    expect(await lockHolders(db.url)).toEqual([{ n: 0 }]);
    // Recorded over a new connection; no SQLSTATE: the connection failed, not a statement.
    expect(
      await query(db.url, "SELECT migration, direction, sqlstate FROM migrate_failures"),
    ).toEqual([{ migration: "1_lost_commit", direction: "up", sqlstate: null }]);
  });
});

/** A connection of the test's own that has run `sql`, holding what it took until ended. */
async function holding(url: string, sql: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(sql).catch(async (err: unknown) => {
    await client.end();
    throw err;
  });
  return client;
}

/** Once a backend of `url`'s database waits on a lock running SQL that contains `text`. */
const waitingOn = (url: string, text: string) =>
  expect
    .poll(
      () =>
        query(
          url,
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock'
              AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()`,
          [text],
        ),
      { timeout: 60_000, interval: 100 },
    )
    .toEqual([{ n: 1 }]);

describe("SIGINT or SIGTERM during up", () => {
  it.each([
    ["SIGTERM", 143],
    ["SIGINT", 130],
  ] as const)(
    "%s: prints what was applied and what was interrupted, and exits %i",
    async (signal, code) => {
      const db = await freshDb();
      const dir = folder(
        {
          "1_first.up.sql": "CREATE TABLE first_done (id int);\n",
          "1_first.down.sql": "DROP TABLE first_done;\n",
          "2_slow.up.sql": "CREATE TABLE slow_one (id int);\nSELECT pg_sleep(600);\n",
          "2_slow.down.sql": "DROP TABLE slow_one;\n",
          "3_never.up.sql": "CREATE TABLE never_run (id int);\n",
          "3_never.down.sql": "DROP TABLE never_run;\n",
        },
        { project: false },
      );
      const events = join(folder({}, { project: false }), "events.jsonl");
      const proc = spawnMigrate(["up", "--dir", dir, "--events", events], {
        env: { DATABASE_URL: db.url },
      });
      let stdout = "";
      proc.child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      // Signalled only once the second migration is running.
      await running(db.url, "pg_sleep(600)");
      proc.child.kill(signal);
      expect(await proc.exited, proc.output()).toBe(code);
      expect(stdout).toMatch(/^applied {2}1_first/m);
      expect(stdout).toMatch(/^FAILED {3}2_slow \(up\) .*\[SQLSTATE 57014\]$/m);
      expect(stdout).toMatch(/rolled back: nothing of it was applied/);
      expect(stdout).toMatch(
        new RegExp(
          `^INTERRUPTED by ${signal}: 1 step\\(s\\) completed and stand; 2_slow \\(up\\) was stopped, see above; not started: 3_never \\(up\\)$`,
          "m",
        ),
      );
      const failed = readFileSync(events, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { event: string })
        .filter((e) => e.event === "migration_failed");
      expect(failed).toEqual([
        expect.objectContaining({ name: "2_slow", code: "57014", stopped: true }),
      ]);
      expect(await query(db.url, "SELECT name FROM pgmigrations")).toEqual([{ name: "1_first" }]);
      expect(await query(db.url, "SELECT to_regclass('slow_one') AS t")).toEqual([{ t: null }]);
      // Stopped, not failed: nothing for migrations_failed to count.
      expect(await query(db.url, "SELECT to_regclass('migrate_failures') AS t")).toEqual([
        { t: null },
      ]);
    },
  );
});

// A signal cancels whatever statement the migrator's session runs, not only
// a step's: bookkeeping reads and writes that wait on a lock stop too, and
// the report of what ran stands.
describe("SIGTERM while the migrator waits on a lock outside a step", () => {
  it("before the first step (pgmigrations locked): stops at once, nothing applied, exit 143", async () => {
    const db = await freshDb();
    const files = { "1_first.up.sql": "CREATE TABLE first_done (id int);\n" };
    const dir = folder(files, { project: false });
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    const more = folder(
      { ...files, "2_next.up.sql": "CREATE TABLE next_one (id int);\n" },
      { project: false },
    );
    // The migrator's first read of pgmigrations waits behind this lock.
    const holder = await holding(db.url, "BEGIN; LOCK TABLE pgmigrations IN ACCESS EXCLUSIVE MODE");
    try {
      const proc = spawnMigrate(["up", "--dir", more, "--lock-timeout", "600s"], {
        env: { DATABASE_URL: db.url },
      });
      await waitingOn(db.url, "pgmigrations");
      proc.child.kill("SIGTERM");
      expect(await proc.exited, proc.output()).toBe(143);
      expect(proc.output()).toMatch(
        /interrupted by SIGTERM before the first step; no migration was applied/,
      );
      expect(proc.output()).not.toMatch(/canceling statement/);
    } finally {
      await holder.end();
    }
    expect(await query(db.url, "SELECT name FROM pgmigrations")).toEqual([{ name: "1_first" }]);
  });

  it("between steps (a backfill's progress table locked): the report of the steps done stands", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        "1_items.up.sql":
          "CREATE TABLE items (id int PRIMARY KEY, b text);\nINSERT INTO items SELECT g FROM generate_series(1, 10) g;\n",
        "2_fill_a.up.sql": "-- migrate:backfill\nUPDATE items SET b = 'a' WHERE b IS NULL;\n",
        "3_waits.up.sql": "SELECT pg_advisory_xact_lock(4242);\n",
        "4_fill_b.up.sql": "-- migrate:backfill\nUPDATE items SET b = 'b' WHERE b = 'a';\n",
      },
      { project: false },
    );
    // Makes migrate_backfills (a backfill's progress record).
    expect((await migrate(db, ["up", "2", "--dir", dir])).code).toBe(0);
    const gate = await holding(db.url, "SELECT pg_advisory_lock(4242)");
    const locker = await holding(db.url, "SELECT 1");
    try {
      const events = join(folder({}, { project: false }), "events.jsonl");
      const proc = spawnMigrate(
        ["up", "--dir", dir, "--lock-timeout", "600s", "--events", events],
        { env: { DATABASE_URL: db.url } },
      );
      let stdout = "";
      proc.child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      // 3_waits runs; the progress table is locked before 4_fill_b reads it.
      await waitingOn(db.url, "pg_advisory_xact_lock(4242)");
      await locker.query("BEGIN; LOCK TABLE migrate_backfills IN ACCESS EXCLUSIVE MODE");
      await gate.query("SELECT pg_advisory_unlock(4242)");
      await waitingOn(db.url, "migrate_backfills");
      proc.child.kill("SIGTERM");
      expect(await proc.exited, proc.output()).toBe(143);
      expect(stdout).toMatch(/^applied {2}3_waits/m);
      expect(stdout).toMatch(
        /^INTERRUPTED by SIGTERM: 1 step\(s\) completed and stand; not started: 4_fill_b \(up\)$/m,
      );
      expect(proc.output()).not.toMatch(/canceling statement/);
      // Its start is closed by a stop, not left open or called a failure.
      const said = readFileSync(events, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { event: string; name?: string; signal?: string });
      expect(said.slice(-3)).toEqual([
        expect.objectContaining({ event: "migration_started", name: "4_fill_b" }),
        expect.objectContaining({
          event: "migration_stopped",
          name: "4_fill_b",
          signal: "SIGTERM",
        }),
        expect.objectContaining({ event: "run_finished", completed: 1, interrupted: "SIGTERM" }),
      ]);
    } finally {
      await locker.end();
      await gate.end();
    }
    expect(
      (await query(db.url, "SELECT name FROM pgmigrations ORDER BY id")).map((r) => r.name),
    ).toEqual(["1_items", "2_fill_a", "3_waits"]);
  });

  it("--dry-run (pgmigrations locked): stops with exit 143 and prints no plan", async () => {
    const db = await freshDb();
    const dir = folder(
      { "1_first.up.sql": "CREATE TABLE first_done (id int);\n" },
      { project: false },
    );
    expect((await migrate(db, ["up", "--dir", dir])).code).toBe(0);
    const holder = await holding(db.url, "BEGIN; LOCK TABLE pgmigrations IN ACCESS EXCLUSIVE MODE");
    try {
      const proc = spawnMigrate(["up", "--dry-run", "--dir", dir], {
        env: { DATABASE_URL: db.url },
      });
      await waitingOn(db.url, "pgmigrations");
      proc.child.kill("SIGTERM");
      expect(await proc.exited, proc.output()).toBe(143);
      expect(proc.output()).toMatch(
        /interrupted by SIGTERM while reading the state; nothing was changed/,
      );
      expect(proc.output()).not.toMatch(/nothing to do|would apply/);
    } finally {
      await holder.end();
    }
  });
});

describe("without a signal", () => {
  it("a read before its first statement that fails closes its start with migration_failed", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        "1_items.up.sql":
          "CREATE TABLE items (id int PRIMARY KEY, b text);\nINSERT INTO items SELECT g FROM generate_series(1, 10) g;\nCREATE TABLE gate (open boolean);\nINSERT INTO gate VALUES (false);\n",
        "2_fill_a.up.sql": "-- migrate:backfill\nUPDATE items SET b = 'a' WHERE b IS NULL;\n",
        // Waits, taking no lock, until the test opens the gate (each loop reads anew).
        "3_gate.up.sql":
          "DO $$ BEGIN WHILE NOT (SELECT open FROM gate) LOOP PERFORM pg_sleep(0.05); END LOOP; END $$;\n",
        "4_fill_b.up.sql": "-- migrate:backfill\nUPDATE items SET b = 'b' WHERE b = 'a';\n",
      },
      { project: false },
    );
    expect((await migrate(db, ["up", "2", "--dir", dir])).code).toBe(0);
    const events = join(folder({}, { project: false }), "events.jsonl");
    const proc = spawnMigrate(
      ["up", "--dir", dir, "--lock-timeout", "1s", "--no-retry", "--events", events],
      { env: { DATABASE_URL: db.url } },
    );
    const locker = await holding(db.url, "SELECT 1");
    try {
      await running(db.url, "WHILE NOT (SELECT open FROM gate)");
      // 4_fill_b's first read (its progress) then waits out lock_timeout.
      await locker.query("BEGIN; LOCK TABLE migrate_backfills IN ACCESS EXCLUSIVE MODE");
      await query(db.url, "UPDATE gate SET open = true");
      expect(await proc.exited, proc.output()).toBe(1);
    } finally {
      proc.child.kill("SIGKILL");
      await locker.end();
    }
    const said = readFileSync(events, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { event: string });
    expect(said.slice(-3)).toEqual([
      expect.objectContaining({ event: "migration_started", name: "4_fill_b" }),
      expect.objectContaining({
        event: "migration_failed",
        name: "4_fill_b",
        at: join(dir, "4_fill_b.up.sql"),
        code: "55P03",
        lockAttempts: 0,
      }),
      expect.objectContaining({ event: "run_finished", completed: 1, error: "SQLSTATE 55P03" }),
    ]);
  });
});

describe("SIGTERM whose cancel cannot reach the server", () => {
  /**
   * Runs `fn` with a role that owns the database and may hold two
   * connections (the migrator's and its lock watch's): the cancel's own
   * connection is refused, so the statement in flight runs to its end.
   */
  async function asLimitedRole(
    db: { url: string },
    fn: (url: string, role: string) => Promise<void>,
  ): Promise<void> {
    const role = `limited_${process.pid}_${Date.now()}`;
    const database = `"${new URL(db.url).pathname.slice(1)}"`;
    await query(db.url, `CREATE ROLE ${role} LOGIN PASSWORD 'limited-pass-1' CONNECTION LIMIT 2`);
    try {
      await query(db.url, `ALTER DATABASE ${database} OWNER TO ${role}`);
      const url = new URL(db.url);
      url.username = role;
      url.password = "limited-pass-1";
      await fn(url.toString(), role);
    } finally {
      await query(db.url, `ALTER DATABASE ${database} OWNER TO CURRENT_USER`);
      await query(db.url, `DROP OWNED BY ${role}`);
      await query(db.url, `DROP ROLE ${role}`);
    }
  }

  /** SIGTERM once both of the role's connections are in; resolves once the cancel was refused. */
  async function signalUncancellable(
    proc: ReturnType<typeof spawnMigrate>,
    url: string,
    role: string,
  ) {
    await expect
      .poll(
        () =>
          query(url, "SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1", [role]),
        { timeout: 60_000, interval: 100 },
      )
      .toEqual([{ n: 2 }]);
    proc.child.kill("SIGTERM");
    await proc.waitFor(/could not cancel the statement in flight/);
  }

  /**
   * Runs `up` as `role` on a file whose first statement waits on advisory
   * lock `key`, held here; signals it there (the cancel refused), then lets
   * the file go on. Resolves with the process, its exit awaited.
   */
  async function signalledAtGate(
    db: { url: string },
    url: string,
    role: string,
    dir: string,
    key: number,
  ) {
    const gate = await holding(db.url, `SELECT pg_advisory_lock(${key})`);
    try {
      const proc = spawnMigrate(["up", "--dir", dir, "--lock-timeout", "600s"], {
        env: { DATABASE_URL: url },
      });
      await waitingOn(db.url, `_lock(${key})`);
      await signalUncancellable(proc, db.url, role);
      await gate.query(`SELECT pg_advisory_unlock(${key})`);
      await proc.exited;
      return proc;
    } finally {
      await gate.end();
    }
  }

  it("a file run statement by statement starts no statement after the signal", async () => {
    const db = await freshDb();
    await asLimitedRole(db, async (url, role) => {
      const dir = folder(
        {
          "1_two.up.sql":
            "-- migrate:no-transaction\nSELECT pg_advisory_lock(4243);\nCREATE TABLE after_signal (id int);\n",
        },
        { project: false },
      );
      const proc = await signalledAtGate(db, url, role, dir, 4243);
      expect(await proc.exited, proc.output()).toBe(143);
      expect(proc.output()).toMatch(
        /^FAILED {3}1_two \(up\) at \S+1_two\.up\.sql:3: stopped by SIGTERM before this statement$/m,
      );
      expect(proc.output()).toMatch(
        /its first 1 statement\(s\) stay applied and it is not recorded/,
      );
      expect(await query(db.url, "SELECT to_regclass('after_signal') AS t")).toEqual([{ t: null }]);
      expect(await query(db.url, "SELECT count(*)::int AS n FROM pgmigrations")).toEqual([
        { n: 0 },
      ]);
    });
  });

  it("a statement that then fails on its own is a failure: recorded, exit 1", async () => {
    const db = await freshDb();
    await asLimitedRole(db, async (url, role) => {
      const dir = folder(
        { "1_fails.up.sql": "SELECT pg_advisory_xact_lock(4245);\nSELECT 1/0;\n" },
        { project: false },
      );
      const proc = await signalledAtGate(db, url, role, dir, 4245);
      expect(await proc.exited, proc.output()).toBe(1);
      expect(proc.output()).toMatch(
        /^FAILED {3}1_fails \(up\) at \S+1_fails\.up\.sql:2: division by zero \[SQLSTATE 22012\]$/m,
      );
      expect(proc.output()).toMatch(
        /^INTERRUPTED by SIGTERM: 0 step\(s\) completed and stand; 1_fails \(up\) failed on its own, see above$/m,
      );
      expect(await query(db.url, "SELECT migration, sqlstate FROM migrate_failures")).toEqual([
        { migration: "1_fails", sqlstate: "22012" },
      ]);
    });
  });

  it("statement_timeout ending the statement after a cancel that missed is a failure, not our stop", async () => {
    const db = await freshDb();
    await asLimitedRole(db, async (url, role) => {
      const dir = folder(
        {
          "1_times_out.up.sql":
            "SELECT pg_advisory_xact_lock(4246);\nSET LOCAL statement_timeout = '1s';\nSELECT pg_sleep(600);\n",
        },
        { project: false },
      );
      // The statement after the gate starts only after the signal.
      const proc = await signalledAtGate(db, url, role, dir, 4246);
      expect(await proc.exited, proc.output()).toBe(1);
      expect(proc.output()).toMatch(
        /^FAILED {3}1_times_out \(up\) at \S+1_times_out\.up\.sql:3: canceling statement due to statement timeout \[SQLSTATE 57014\]$/m,
      );
      expect(proc.output()).toMatch(/1_times_out \(up\) failed on its own, see above/);
      expect(await query(db.url, "SELECT migration, sqlstate FROM migrate_failures")).toEqual([
        { migration: "1_times_out", sqlstate: "57014" },
      ]);
    });
  });

  it("a step whose reads the signal fell in is not begun", async () => {
    const db = await freshDb();
    await asLimitedRole(db, async (url, role) => {
      const dir = folder(
        {
          "1_first.up.sql": "CREATE TABLE first_done (id int);\n",
          "2_waits.up.sql": "-- migrate:phase expand\nSELECT pg_advisory_xact_lock(4244);\n",
          "3_contract.up.sql": "-- migrate:phase contract 2\nCREATE TABLE contracted (id int);\n",
        },
        { project: false },
      );
      // Makes migrate_instances, which the contract gate reads before step 3.
      const first = await migrate(db, ["up", "1", "--dir", dir], { env: { DATABASE_URL: url } });
      expect(first.code, first.output).toBe(0);
      const gate = await holding(db.url, "SELECT pg_advisory_lock(4244)");
      const locker = await holding(db.url, "SELECT 1");
      try {
        const proc = spawnMigrate(["up", "--dir", dir, "--lock-timeout", "600s"], {
          env: { DATABASE_URL: url },
        });
        let stdout = "";
        proc.child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
        await waitingOn(db.url, "pg_advisory_xact_lock(4244)");
        await locker.query("BEGIN; LOCK TABLE migrate_instances IN ACCESS EXCLUSIVE MODE");
        await gate.query("SELECT pg_advisory_unlock(4244)");
        // The contract gate's read waits; the signal's cancel cannot reach it.
        await waitingOn(db.url, "migrate_instances");
        await signalUncancellable(proc, db.url, role);
        await locker.query("COMMIT");
        expect(await proc.exited, proc.output()).toBe(143);
        expect(stdout).toMatch(/^applied {2}2_waits/m);
        expect(stdout).toMatch(
          /^INTERRUPTED by SIGTERM: 1 step\(s\) completed and stand; not started: 3_contract \(up\)$/m,
        );
      } finally {
        await locker.end();
        await gate.end();
      }
      expect(await query(db.url, "SELECT to_regclass('contracted') AS t")).toEqual([{ t: null }]);
      expect(
        (await query(db.url, "SELECT name FROM pgmigrations ORDER BY id")).map((r) => r.name),
      ).toEqual(["1_first", "2_waits"]);
    });
  });
});
