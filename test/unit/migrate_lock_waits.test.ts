import type pg from "pg";
import { describe, expect, it } from "vitest";
import { lockWaits as printLockWaits } from "../../cmd/migrate/print_locks.js";
import { lockWaits, lockWaitsQuery } from "../../internal/migrate/blockers.js";

// `migrate locks` on every supported server: pg_locks.waitstart exists from
// PostgreSQL 14; on 13 the wait counts from the waiting statement's start.

/** A client that answers the version query, then records the lock-wait query and answers `rows`. */
function fakeClient(versionNum: number, rows: unknown[]) {
  const sent: string[] = [];
  const client = {
    query: (text: string) => {
      sent.push(text);
      return Promise.resolve({
        rows: text.includes("server_version_num") ? [{ v: versionNum }] : rows,
      });
    },
  } as unknown as pg.ClientBase;
  return { client, sent };
}

const session = (pid: number) => ({
  pid,
  user: "alice",
  application: "app",
  state: "active",
  transactionMs: "1500",
  statement: "LOCK TABLE items",
  truncated: false,
});

describe("the lock-wait query", () => {
  it("When the server is 14 or later, Then the wait counts from pg_locks.waitstart", () => {
    expect(lockWaitsQuery(140000)).toContain("l.waitstart");
    expect(lockWaitsQuery(170002)).toContain("l.waitstart");
  });

  it("When the server is 13, Then it reads no waitstart and counts from the statement's start", () => {
    const sql = lockWaitsQuery(130016);

    expect(sql).not.toContain("waitstart");
    expect(sql).toContain("a.query_start");
  });

  it("When asked on a PostgreSQL 13 server, Then the version is read first and the wait is marked as a bound", async () => {
    const { client, sent } = fakeClient(130016, [
      { blocked: { ...session(7), waitingMs: "3200" }, blocking: session(8) },
    ]);

    const waits = await lockWaits(client);

    expect(sent).toHaveLength(2);
    expect(sent[1]).not.toContain("waitstart");
    expect(waits[0]!.blocked).toMatchObject({ pid: 7, waitingMs: 3200, waitingFrom: "statement" });
    let out = "";
    printLockWaits((t) => (out += t), waits);
    expect(out).toMatch(/^waiting for at most 3\.2s: pid 7 /);
  });

  it("When asked on PostgreSQL 14, Then the wait is the lock's own", async () => {
    const { client, sent } = fakeClient(140011, [
      { blocked: { ...session(7), waitingMs: "3200" }, blocking: session(8) },
    ]);

    const waits = await lockWaits(client);

    expect(sent[1]).toContain("waitstart");
    expect(waits[0]!.blocked.waitingFrom).toBe("lock");
    let out = "";
    printLockWaits((t) => (out += t), waits);
    expect(out).toMatch(/^waiting for 3\.2s: pid 7 /);
  });
});
