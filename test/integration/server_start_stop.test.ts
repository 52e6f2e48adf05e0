import { writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { PG_MIGRATE_LOCK_ID } from "../../internal/migrate/seams/node_pg_migrate.js";
import { testRootKey } from "../helpers/app.js";
import { query, running } from "../helpers/catalog.js";
import type { TestDatabase } from "../helpers/db.js";
import { migrationFixtures, projectNames } from "../helpers/migrations.js";
import { spawnServer, type ServerProcess } from "../helpers/process.js";

// SIGTERM while the server migrates on start-up stops the migration as
// `migrate up` stops it, rather than waiting for the step (a backfill may
// run for hours; an orchestrator's SIGKILL would then cut it unreported).

const { freshDb, folder, migrate } = migrationFixtures();

const slow = {
  "000098_quick.up.sql": "CREATE TABLE quick_one (id int);\n",
  "000098_quick.down.sql": "DROP TABLE quick_one;\n",
  "000099_slow.up.sql": "CREATE TABLE slow_one (id int);\nSELECT pg_sleep(600);\n",
  "000099_slow.down.sql": "DROP TABLE slow_one;\n",
};

function startServer(db: TestDatabase, dir: string) {
  const conf = join(dir, "up.yaml");
  writeFileSync(
    conf,
    `server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" } }
data: { database: { source: "${db.url}", migrate: up, migration: { dir: "${dir}" } } }
kms: { root_key: "${testRootKey}" }
auth: { enabled: false }
log: { level: info, format: json }
`,
  );
  return spawnServer(["-conf", conf], {
    env: { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined },
  });
}

const applied = async (db: TestDatabase) =>
  (await query<{ name: string }>(db.url, "SELECT name FROM pgmigrations ORDER BY id")).map(
    (r) => r.name,
  );

/** The line matching `pattern`, once read: the last output may come after the exit. */
async function said(server: ServerProcess, pattern: RegExp): Promise<string> {
  await expect.poll(() => server.output(), { timeout: 10_000 }).toMatch(pattern);
  return server
    .output()
    .split("\n")
    .find((l) => pattern.test(l))!;
}

// The server's start-up and the poll for its statement may each take most
// of a minute on a loaded machine.
describe("SIGTERM while the server migrates on start-up", { timeout: 180_000 }, () => {
  it("cancels the step in flight, exits 0 saying what stands, and never listens", async () => {
    const db = await freshDb();
    // The project's own contracts wait for an older release: applied first.
    expect((await migrate(db, ["up"])).code).toBe(0);
    const server = startServer(db, folder(slow));
    try {
      await running(db.url, "pg_sleep(600)");
      server.child.kill("SIGTERM");
      expect(await server.exited, server.output()).toBe(0);
    } finally {
      server.child.kill("SIGKILL");
    }
    const line = JSON.parse(await said(server, /"msg":"start-up stopped"/)) as {
      level: string;
      signal: string;
      err: { message: string };
    };
    expect(line).toMatchObject({ level: "warn", signal: "SIGTERM" });
    expect(line.err.message).toMatch(
      new RegExp(
        `^migrate: interrupted by SIGTERM: 1 step\\(s\\) completed and stand; 000099_slow \\(up\\) failed at .*000099_slow\\.up\\.sql:2: canceling statement due to user request \\[SQLSTATE 57014\\] \\(rolled back: nothing of it was applied\\)$`,
      ),
    );
    expect(server.output()).not.toMatch(/"msg":"listening/);
    expect(server.output()).not.toMatch(/"level":"fatal"/);
    expect(await applied(db)).toEqual([...projectNames, "000098_quick"]);
    expect(await query(db.url, "SELECT to_regclass('slow_one') AS t")).toEqual([{ t: null }]);
    // A stop, not a failure: nothing for the next run to warn about.
    expect(await query(db.url, "SELECT to_regclass('migrate_failures') AS t")).toEqual([
      { t: null },
    ]);
  });

  it("ends the wait for another migrator's lock at once, nothing changed", async () => {
    const db = await freshDb();
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock($1)", [PG_MIGRATE_LOCK_ID]);
      const server = startServer(db, folder());
      try {
        await server.waitFor(/another migration holds the lock; waiting/);
        server.child.kill("SIGTERM");
        expect(await server.exited, server.output()).toBe(0);
      } finally {
        server.child.kill("SIGKILL");
      }
      await said(
        server,
        /"message":"migrate: interrupted by SIGTERM while waiting for the migration lock; nothing was changed".*"msg":"start-up stopped"/,
      );
      expect(server.output()).not.toMatch(/"msg":"listening/);
    } finally {
      await holder.end();
    }
    expect(await query(db.url, "SELECT to_regclass('pgmigrations') AS t")).toEqual([{ t: null }]);
  });
});
