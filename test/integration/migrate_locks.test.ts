import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { lockWaits } from "../../internal/migrate/blockers.js";
import { migratorOptions } from "../../internal/migrate/options.js";
import { migrateOnStart } from "../../internal/migrate/startup.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { catalogSnapshot, query } from "../helpers/catalog.js";
import type { TestDatabase } from "../helpers/db.js";
import { migrationFixtures } from "../helpers/migrations.js";
import { spawnMigrate, stdoutOf } from "../helpers/process.js";

// Who is in the way: a lock_timeout refusal names the session holding the
// lock, `up` tries again where that is safe, `migrate locks` lists waits, and
// a concurrent index build names the old transactions it will wait for.
// Every wait here is on pg_stat_activity or on the migrator's output, never
// on the clock.

const { freshDb, folder, migrate } = migrationFixtures();

const base = {
  "000001_items.up.sql": "CREATE TABLE items (id int PRIMARY KEY, label text);\n",
  "000001_items.down.sql": "DROP TABLE items;\n",
};
const addColumn = {
  "000002_items_note.up.sql": "ALTER TABLE items ADD COLUMN note text;\n",
  "000002_items_note.down.sql": "ALTER TABLE items DROP COLUMN note;\n",
};
const buildIndex = {
  "000003_items_label.up.sql": "CREATE INDEX CONCURRENTLY items_label ON items (label);\n",
  "000003_items_label.down.sql": "DROP INDEX CONCURRENTLY items_label;\n",
};

const clients: pg.Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.end().catch(() => undefined);
});

/** A session of the test's own, with its pid. */
async function session(db: TestDatabase): Promise<{ client: pg.Client; pid: number }> {
  const client = new pg.Client({ connectionString: db.url, application_name: "locks-test" });
  await client.connect();
  clients.push(client);
  const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
  return { client, pid: rows[0]!.pid };
}

/** An open transaction that has read `items` (ACCESS SHARE, held until it ends). */
async function holder(db: TestDatabase, isolation = "READ COMMITTED") {
  const s = await session(db);
  await s.client.query(`BEGIN ISOLATION LEVEL ${isolation}`);
  await s.client.query("SELECT count(*) FROM items WHERE label <> 'holder-marker'");
  return s;
}

/** A session waiting (in its transaction) for a lock on `items` that a holder keeps. */
async function waitOnItems(db: TestDatabase) {
  const h = await holder(db);
  const w = await session(db);
  await w.client.query("BEGIN");
  const waiting = w.client.query("LOCK TABLE items IN ACCESS EXCLUSIVE MODE");
  // Ended by afterEach if the test fails first: not an unhandled rejection.
  waiting.catch(() => undefined);
  await until(
    db,
    "SELECT count(*) > 0 AS ok FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
    [w.pid],
  );
  return { h, w, waiting };
}

/** Polls `sql` (one boolean `ok`) until true. */
// `migrate up` whose locks a holder refuses at 300 ms, its stdout kept.
function upRefused(db: TestDatabase, dir: string) {
  const proc = spawnMigrate(["up", "--dir", dir, "--lock-timeout", "300ms"], {
    env: { DATABASE_URL: db.url },
  });
  return { proc, stdout: stdoutOf(proc) };
}

async function until(db: TestDatabase, sql: string, params: unknown[] = []): Promise<void> {
  for (;;) {
    const [row] = await query(db.url, sql, params);
    if ((row as { ok: boolean }).ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function withBase(files: Record<string, string>) {
  const db = await freshDb();
  const dir = folder({ ...base, ...files }, { project: false });
  const first = await migrate(db, ["up", "1", "--dir", dir]);
  expect(first.code, first.output).toBe(0);
  return { db, dir };
}

describe("a lock_timeout refusal names who holds the lock", () => {
  it("up --no-retry fails at once with the holder's pid and statement, text and --json", async () => {
    const { db, dir } = await withBase(addColumn);
    const h = await holder(db);
    const args = ["up", "--dir", dir, "--lock-timeout", "300ms", "--no-retry"];
    const text = await migrate(db, args);
    expect(text.code, text.output).toBe(1);
    expect(text.stdout).toMatch(/FAILED {3}000002_items_note .*\[SQLSTATE 55P03\]/);
    expect(text.stdout).toMatch(/lock_timeout, attempt 1 at /);
    expect(text.stdout).toContain(
      `pid ${h.pid} (postgres, locks-test, idle in transaction, transaction `,
    );
    expect(text.stdout).toContain("SELECT count(*) FROM items WHERE label <> '?'");
    expect(text.stdout).toMatch(/ms before the refusal/);
    expect(text.stdout).toContain("not tried again: retry is off");

    const json = await migrate(db, [...args, "--json"]);
    expect(json.code, json.output).toBe(1);
    const failed = JSON.parse(json.stdout).failed;
    expect(failed.code).toBe("55P03");
    expect(failed.lockAttempts).toHaveLength(1);
    expect(failed.lockAttempts[0].blockers.blockers).toEqual([
      expect.objectContaining({
        pid: h.pid,
        user: "postgres",
        application: "locks-test",
        state: "idle in transaction",
        truncated: false,
      }),
    ]);
    expect(await query(db.url, "SELECT count(*)::int AS n FROM pgmigrations")).toEqual([{ n: 1 }]);
  });

  it("a long statement is cut and said to be, its literals blanked", async () => {
    const { db, dir } = await withBase(addColumn);
    const h = await session(db);
    await h.client.query("BEGIN");
    const secret = "hunter2-in-a-literal";
    await h.client.query(
      `SELECT count(*) FROM items WHERE label <> '${secret}'${" AND label IS NOT NULL".repeat(8)}`,
    );
    const run = await migrate(db, ["up", "--dir", dir, "--lock-timeout", "300ms", "--no-retry"]);
    expect(run.code, run.output).toBe(1);
    expect(run.stdout).toContain(`pid ${h.pid} `);
    expect(run.stdout).toContain("… (truncated)");
    expect(run.stdout).toContain("label <> '?'");
    expect(run.output).not.toContain(secret);
  });

  it("up tries again and applies once the holder commits", async () => {
    const { db, dir } = await withBase(addColumn);
    const h = await holder(db);
    const { proc, stdout } = upRefused(db, dir);
    // The first refusal is logged with its blockers before the next try.
    const line = await proc.waitFor(/trying again/);
    expect(JSON.parse(line).blockers.blockers[0].pid).toBe(h.pid);
    await h.client.query("COMMIT");
    expect(await proc.exited, proc.output()).toBe(0);
    expect(stdout()).toMatch(/lock_timeout, attempt 1 at .*; tried again after \d+ ms/);
    expect(stdout()).toContain(`pid ${h.pid} (postgres, locks-test`);
    expect(stdout()).toMatch(/^applied {2}000002_items_note/m);
    expect(await query(db.url, "SELECT count(*)::int AS n FROM pgmigrations")).toEqual([{ n: 2 }]);
  });
});

describe("a transaction that read pgmigrations and stays open", () => {
  it("does not hold up an up, with or without a step pending", async () => {
    const { db, dir } = await withBase(addColumn);
    const reader = await session(db);
    await reader.client.query("BEGIN; SELECT count(*) FROM pgmigrations");
    const args = ["--dir", dir, "--lock-timeout", "300ms", "--no-retry"];
    const one = await migrate(db, ["up", ...args]);
    expect(one.code, one.output).toBe(0);
    expect(one.stdout).toMatch(/^applied {2}000002_items_note/m);
    const none = await migrate(db, ["up", ...args]);
    expect(none.code, none.output).toBe(0);
    await reader.client.query("COMMIT");
    expect(await query(db.url, "SELECT count(*)::int AS n FROM pgmigrations")).toEqual([{ n: 2 }]);
  });
});

describe("a signal while refused tries wait to be tried again", () => {
  it("stops: exit 143, not tried again, no failure recorded", async () => {
    const { db, dir } = await withBase(addColumn);
    const h = await holder(db);
    const { proc, stdout } = upRefused(db, dir);
    try {
      await proc.waitFor(/trying again/);
      // In the pause before the next try, or in that try's wait: a stop either way.
      proc.child.kill("SIGTERM");
      expect(await proc.exited, proc.output()).toBe(143);
    } finally {
      proc.child.kill("SIGKILL");
    }
    await h.client.query("COMMIT");
    expect(stdout()).toMatch(/^FAILED {3}000002_items_note /m);
    expect(stdout()).toMatch(/000002_items_note \(up\) was stopped, see above/);
    expect(await query(db.url, "SELECT to_regclass('migrate_failures') AS t")).toEqual([
      { t: null },
    ]);
    expect(await query(db.url, "SELECT count(*)::int AS n FROM pgmigrations")).toEqual([{ n: 1 }]);
  });
});

describe("bad values", () => {
  it.each([
    [["up", "--lock-attempts", "0"], "--lock-attempts 0"],
    [["up", "--lock-attempts", "3", "--no-retry"], "--no-retry"],
    [["up", "--old-transactions=sometimes"], "sometimes"],
    [["up", "--old-transaction-age", "soon"], "--old-transaction-age soon"],
    [["up", "--no-retry", "--no-retry"], "--retry given more than once"],
  ])("%j exits 2 naming %s, and changes nothing", async (args, named) => {
    const db = await freshDb();
    const run = await migrate(db, [...args, "--dir", folder(base, { project: false })]);
    expect(run.code, run.output).toBe(2);
    expect(run.output).toContain(named);
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual([]);
  });
});

describe("the server's start-up up", () => {
  it("retries as the CLI does, and its error names the holder", async () => {
    const { db, dir } = await withBase(addColumn);
    const h = await holder(db);
    const opts = migratorOptions(
      undefined,
      db.url,
      createLogger({ level: "silent", format: "json" }),
    );
    expect([opts.lockAttempts, opts.oldTransactionAgeMs, opts.oldTransactions]).toEqual([
      5,
      60_000,
      "wait",
    ]);
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      // A lock_timeout long enough for the watch's connection and first look
      // on a loaded machine (at 300 ms it once ended before the first look).
      await expect(
        migrateOnStart("up", { ...opts, dir, lockTimeoutMs: 3000, lockAttempts: 1 }, pool),
      ).rejects.toThrow(
        // What stays applied, as the CLI's report says it, then the holder.
        new RegExp(
          `\\(rolled back: nothing of it was applied\\); 1 attempt\\(s\\), held by pid ${h.pid} \\(postgres, locks-test`,
        ),
      );
    } finally {
      await pool.end();
    }
  });
});

describe("the server's start-up up, measured", () => {
  it("says how long a migration lost to refused tries (migration_lock_wait_seconds)", async () => {
    const { db, dir } = await withBase(addColumn);
    const h = await holder(db);
    const opts = migratorOptions(
      undefined,
      db.url,
      createLogger({ level: "silent", format: "json" }),
    );
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const started = migrateOnStart("up", { ...opts, dir, lockTimeoutMs: 300 }, pool);
      // A try waits for the lock, is refused (no waiter until the next try's
      // pause ends), and only then does the holder let go.
      const waiters =
        "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock') AS n FROM pg_stat_activity WHERE datname = current_database()";
      await until(db, `SELECT n > 0 AS ok FROM (${waiters}) w`);
      await until(db, `SELECT n = 0 AS ok FROM (${waiters}) w`);
      await h.client.query("COMMIT");
      const run = await started;
      expect(run?.applied.map((a) => a.name)).toEqual(["000002_items_note"]);
      // At least the refused try's lock_timeout.
      expect(run!.applied[0]!.lockRetryMs).toBeGreaterThanOrEqual(300);
      expect(run!.lockWaitMs).toBeGreaterThanOrEqual(0);
    } finally {
      await pool.end();
    }
  });
});

describe("migrate locks", () => {
  it("shows a waiting session and the one holding its lock, text and --json", async () => {
    const { db, dir } = await withBase({});
    const { h, w, waiting } = await waitOnItems(db);
    const json = await migrate(db, ["locks", "--json", "--dir", dir]);
    expect(json.code, json.output).toBe(0);
    const { waits } = JSON.parse(json.stdout);
    expect(waits).toContainEqual({
      blocked: expect.objectContaining({
        pid: w.pid,
        statement: "LOCK TABLE items IN ACCESS EXCLUSIVE MODE",
        waitingMs: expect.any(Number),
      }),
      blocking: expect.objectContaining({
        pid: h.pid,
        user: "postgres",
        state: "idle in transaction",
        transactionMs: expect.any(Number),
      }),
    });
    // The query a PostgreSQL 13 server gets (no pg_locks.waitstart) finds the same pair.
    const reader = await session(db);
    expect(await lockWaits(reader.client, 130000)).toContainEqual({
      blocked: expect.objectContaining({
        pid: w.pid,
        waitingMs: expect.any(Number),
        waitingFrom: "statement",
      }),
      blocking: expect.objectContaining({ pid: h.pid }),
    });
    const text = await migrate(db, ["locks", "--dir", dir]);
    expect(text.code, text.output).toBe(0);
    expect(text.stdout).toMatch(
      new RegExp(`^waiting for .*: pid ${w.pid} .*LOCK TABLE items`, "m"),
    );
    expect(text.stdout).toContain(`  blocked by pid ${h.pid} (postgres, locks-test`);
    await h.client.query("COMMIT");
    await waiting;
    await w.client.query("COMMIT");
    const none = await migrate(db, ["locks", "--dir", dir]);
    expect(none.stdout).toContain("no session waits for a lock");
  });

  it("shows only its own database's waits", async () => {
    const { db: other } = await withBase({});
    const { h, w, waiting } = await waitOnItems(other);
    const { db, dir } = await withBase({});
    const mine = await migrate(db, ["locks", "--dir", dir]);
    expect(mine.code, mine.output).toBe(0);
    expect(mine.stdout).toContain("no session waits for a lock");
    expect(mine.stdout).not.toContain(`pid ${w.pid}`);
    // Not because the wait ended: the other database's view still has it.
    const theirs = await migrate(other, ["locks", "--dir", dir]);
    expect(theirs.stdout).toContain(`pid ${w.pid}`);
    await h.client.query("COMMIT");
    await waiting;
  });

  it("exits 2 when it cannot look", async () => {
    const run = await migrate({ url: "" } as TestDatabase, [
      "locks",
      "--database-url",
      "postgres://postgres@127.0.0.1:1/nothing",
      "--connect-timeout",
      "2s",
    ]);
    expect(run.code, run.output).toBe(2);
    expect(run.output).toContain("could not read the lock waits");
  });
});

describe("old transactions before a concurrent index build", () => {
  const oldEnough = (pid: number) =>
    [
      "SELECT coalesce(bool_or(clock_timestamp() - xact_start > interval '1s'), false) AS ok",
      `FROM pg_stat_activity WHERE pid = ${pid}`,
    ].join(" ");

  it("are named, and the build waits for them", async () => {
    const { db, dir } = await withBase(buildIndex);
    // A snapshot held open: the build must wait for it to end.
    const h = await holder(db, "REPEATABLE READ");
    await until(db, oldEnough(h.pid));
    const proc = spawnMigrate(
      ["up", "--dir", dir, "--old-transaction-age", "1s", "--lock-timeout", "10m"],
      { env: { DATABASE_URL: db.url } },
    );
    const stdout = stdoutOf(proc);
    const line = await proc.waitFor(/old transaction/);
    expect(JSON.parse(line).transactions[0].pid).toBe(h.pid);
    // The build is under way and waits for the holder's snapshot.
    await until(
      db,
      `SELECT count(*) > 0 AS ok FROM pg_stat_activity
        WHERE query LIKE 'CREATE INDEX CONCURRENTLY items_label%' AND wait_event_type = 'Lock'`,
    );
    await h.client.query("COMMIT");
    expect(await proc.exited, proc.output()).toBe(0);
    expect(stdout()).toContain(`old      transactions open when 000003_items_label`);
    expect(stdout()).toContain(`pid ${h.pid} (postgres, locks-test, idle in transaction`);
    expect(stdout()).toMatch(/^applied {2}000003_items_label/m);
  });

  it("a build stopped by SIGTERM says which INVALID index it left, and the next up rebuilds it", async () => {
    const { db, dir } = await withBase(buildIndex);
    // Another INVALID index, there before the run: not the run's to name.
    await query(db.url, "INSERT INTO items VALUES (1, 'same'), (2, 'same')");
    await expect(
      query(db.url, "CREATE UNIQUE INDEX CONCURRENTLY items_unique_label ON items (label)"),
    ).rejects.toThrow(/could not create unique index/);
    const h = await holder(db, "REPEATABLE READ");
    const proc = spawnMigrate(["up", "--dir", dir, "--lock-timeout", "10m"], {
      env: { DATABASE_URL: db.url },
    });
    try {
      // Built, and waiting for the holder's snapshot: the index exists, INVALID.
      await until(
        db,
        `SELECT count(*) > 0 AS ok FROM pg_stat_activity WHERE datname = current_database()
          AND query LIKE 'CREATE INDEX CONCURRENTLY items_label%' AND wait_event_type = 'Lock'`,
      );
      proc.child.kill("SIGTERM");
      expect(await proc.exited, proc.output()).toBe(143);
    } finally {
      proc.child.kill("SIGKILL");
    }
    expect(proc.output()).toContain(
      "its interrupted index build left public.items_label INVALID (it takes writes and enforces nothing; the next up drops and rebuilds it)",
    );
    expect(proc.output()).not.toContain("items_unique_label");
    await h.client.query("COMMIT");
    const again = await migrate(db, ["up", "--dir", dir]);
    expect(again.code, again.output).toBe(0);
    expect(again.stdout).toContain("dropped  INVALID index public.items_label");
    expect(again.stdout).toMatch(/^applied {2}000003_items_label/m);
  });

  it("--old-transactions=refuse exits 1 naming them, and applies nothing", async () => {
    const db = await freshDb();
    const dir = folder({ ...base, ...buildIndex }, { project: false });
    const before = await catalogSnapshot(db.url, { includeMigrationTable: true });
    const h = await session(db);
    await h.client.query("BEGIN; SELECT 1");
    await until(db, oldEnough(h.pid));
    const run = await migrate(db, [
      "up",
      "--dir",
      dir,
      "--old-transaction-age",
      "1s",
      "--old-transactions=refuse",
    ]);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toContain("000003_items_label builds an index concurrently");
    expect(run.output).toContain(`pid ${h.pid} (postgres, locks-test, idle in transaction`);
    expect(run.output).toContain("nothing was applied");
    expect(await catalogSnapshot(db.url, { includeMigrationTable: true })).toEqual(before);
  });
});
