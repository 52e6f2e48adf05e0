import { afterEach, describe, expect, it } from "vitest";
import { PG_MIGRATE_LOCK_ID } from "../../internal/migrate/seams/node_pg_migrate.js";
import { query } from "../helpers/catalog.js";
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
      const proc = spawnMigrate(["up", "--dir", dir], { env: { DATABASE_URL: db.url } });
      let stdout = "";
      proc.child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      // Signalled only once the second migration is running.
      await expect
        .poll(
          () =>
            query(
              db.url,
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND state = 'active' AND pid <> pg_backend_pid()",
            ),
          { timeout: 60_000, interval: 100 },
        )
        .toEqual([{ n: 1 }]);
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
      expect(await query(db.url, "SELECT name FROM pgmigrations")).toEqual([{ name: "1_first" }]);
      expect(await query(db.url, "SELECT to_regclass('slow_one') AS t")).toEqual([{ t: null }]);
      // Stopped, not failed: nothing for migrations_failed to count.
      expect(await query(db.url, "SELECT to_regclass('migrate_failures') AS t")).toEqual([
        { t: null },
      ]);
    },
  );
});
