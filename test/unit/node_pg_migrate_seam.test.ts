import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Migration, PG_MIGRATE_LOCK_ID as upstreamLockId, runner } from "node-pg-migrate";
import { afterAll, describe, expect, it } from "vitest";
import {
  MIGRATIONS_TABLE,
  MIGRATIONS_TABLE_COLUMNS,
  PG_MIGRATE_LOCK_ID,
  WRITTEN_FOR,
} from "../../internal/migrate/seams/node_pg_migrate.js";

// What cmd/migrate copies from node-pg-migrate, read back from the installed
// library through its public API (a client that records what it is sent):
// if a release moves the lock, the table or its columns, this fails before
// the two tools stop excluding each other or reading each other's state.

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const upstreamTable = `"${MIGRATIONS_TABLE.split(".").join('"."')}"`;

function recordingClient() {
  const sent: string[] = [];
  const query = async (q: string | { text: string }) => {
    const text = typeof q === "string" ? q : q.text;
    sent.push(text);
    return /advisory_lock\(/.test(text)
      ? { rows: [{ lockObtained: true, lockReleased: true }], rowCount: 1 }
      : { rows: [], rowCount: 0 };
  };
  return { sent, query };
}

const empty = mkdtempSync(join(tmpdir(), "kbts-unit-npm-"));
afterAll(() => rmSync(empty, { recursive: true, force: true }));

describe("node-pg-migrate", () => {
  it("is installed in the release range the seam was written for", () => {
    const root = resolve(import.meta.dirname, "../..");
    const declared = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    expect(declared.dependencies["node-pg-migrate"]).toBe(WRITTEN_FOR);
    const installed = (
      createRequire(join(root, "package.json"))("node-pg-migrate/package.json") as {
        version: string;
      }
    ).version;
    // A caret range: the same major version, at least the one written for.
    const [major, ...rest] = WRITTEN_FOR.replace(/^\^/, "").split(".").map(Number);
    const [iMajor, ...iRest] = installed.split(".").map((n) => parseInt(n, 10));
    expect(iMajor).toBe(major);
    expect(iRest[0]! * 1e6 + iRest[1]!).toBeGreaterThanOrEqual(rest[0]! * 1e6 + rest[1]!);
  });

  it("takes the same advisory lock key, creates the same table and reads it in run order", async () => {
    expect(PG_MIGRATE_LOCK_ID).toBe(upstreamLockId);
    const client = recordingClient();
    await runner({
      dbClient: client as never,
      dir: empty,
      direction: "up",
      migrationsTable: "pgmigrations",
      checkOrder: false,
      logger: quiet,
    });
    expect(client.sent).toEqual([
      `SELECT pg_try_advisory_lock(${PG_MIGRATE_LOCK_ID}) AS "lockObtained"`,
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'pgmigrations'",
      `CREATE TABLE ${upstreamTable} (${MIGRATIONS_TABLE_COLUMNS})`,
      `SELECT name FROM ${upstreamTable} ORDER BY run_on, id`,
      `SELECT pg_advisory_unlock(${PG_MIGRATE_LOCK_ID}) AS "lockReleased"`,
    ]);
  });

  it("records a migration as a row of that table named by the file's base name, with no checksum", async () => {
    const client = recordingClient();
    const action = () => undefined;
    for (const direction of ["up", "down"] as const) {
      await new Migration(
        client as never,
        "/migrations/000001_init_schema.sql",
        { up: action, down: () => undefined },
        { migrationsTable: "pgmigrations", singleTransaction: false } as never,
        undefined,
        quiet,
      ).apply(direction);
    }
    expect(client.sent).toEqual([
      "BEGIN;",
      `INSERT INTO ${upstreamTable} (name, run_on) VALUES ('000001_init_schema', NOW());`,
      "COMMIT;",
      "BEGIN;",
      `DELETE FROM ${upstreamTable} WHERE name='000001_init_schema';`,
      "COMMIT;",
    ]);
  });
});
