import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService, ReencryptionState } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import type { App } from "../../cmd/server/wire.js";
import { ErrorInfoSchema } from "../../third_party/google/rpc/error_details_pb.js";
import { startTestApp } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { until } from "../helpers/poll.js";

// 60 users under three key versions, moved to the active key by the job
// while a client keeps updating some of them, on one of two instances.

let db: TestDatabase;
let a: App;
let b: App;
const clients = (app: App) => {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` });
  return { kms: createClient(KmsService, transport), users: createClient(UserService, transport) };
};

const ids: bigint[] = [];
beforeAll(async () => {
  db = await createTestDatabase();
  a = await startTestApp(db.url);
  b = await startTestApp(db.url);
  // 60 users, 20 under each of three key versions.
  const { kms, users } = clients(a);
  for (let version = 0; version < 3; version++) {
    if (version > 0) await kms.rotateDataKey({ reason: "test" });
    for (let i = 0; i < 20; i++) {
      const n = version * 20 + i;
      const { user } = await users.createUser({
        username: `re_${n}`,
        password: "passw0rd-long",
        email: `re${n}@example.com`,
        phone: `+1555${String(2000000 + n)}`,
        name: `Re User ${n}`,
      });
      ids.push(user!.id);
    }
  }
}, 300_000); // 60 scrypt hashes one after another: minutes on a loaded machine
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await db?.drop();
});

describe("re-encryption", () => {
  it("moves every value to the active key, one job for two instances asked at once, losing no user's update", async () => {
    const onA = clients(a);
    const onB = clients(b);
    const old = (await onA.kms.getStatus({})).keyUsage.map((u) => u.version);
    expect(old).toHaveLength(3);
    const active = (await onA.kms.rotateDataKey({ reason: "the target" })).key!.version;

    // Asked on both instances at once: one job starts, the other is refused.
    const asked = await Promise.allSettled([
      onA.kms.startReencryption({ batchSize: 7 }),
      onB.kms.startReencryption({ batchSize: 7 }),
    ]);
    const refused = asked.filter((r) => r.status === "rejected");
    expect(asked.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    expect(refused).toHaveLength(1);
    const err = ConnectError.from((refused[0] as PromiseRejectedResult).reason);
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe("REENCRYPTION_RUNNING");

    // A client changes some users while the job runs: its writes win.
    const written = new Map<bigint, string>();
    let writing = true;
    const writer = (async () => {
      for (let round = 0; writing && round < 200; round++) {
        const id = ids[(round * 7) % ids.length]!;
        const name = `Changed ${round}`;
        await onB.users.updateUser({ id, name, updateMask: { paths: ["name"] } });
        written.set(id, name);
      }
    })();
    const status = await until(
      () => onA.kms.getReencryptionStatus({}).then((r) => r.status!),
      (s) => s.state === ReencryptionState.FINISHED,
    );
    writing = false;
    await writer;

    expect(status.rowsRemaining).toBe(0n);
    expect(status.rowsFailed).toBe(0n);
    expect(status.rowsDone).toBeGreaterThan(0n);
    expect(status.rowsDone).toBeLessThanOrEqual(60n);
    const left = await query<{ n: string }>(
      db.url,
      "SELECT count(*) AS n FROM users WHERE NOT (key_versions <@ ARRAY[$1]::int[])",
      [active],
    );
    expect(left[0]!.n).toBe("0");
    const after = await onA.kms.getStatus({});
    expect(after.keyUsage.map((u) => u.version)).toEqual([active]);
    // What the job freed: the older keys protect nothing here any more.
    expect(after.unreferencedVersions).toEqual(old);
    for (const [i, id] of ids.entries()) {
      const { user } = await onB.users.getUser({ id });
      expect(user?.email).toBe(`re${i}@example.com`);
      expect(user?.name).toBe(written.get(id) ?? `Re User ${i}`);
    }
  }, 120_000);

  it("finishes at once with nothing to move, and a stop after the end changes nothing", async () => {
    const { kms } = clients(a);
    await kms.startReencryption({});
    const done = await until(
      () => kms.getReencryptionStatus({}).then((r) => r.status!),
      (s) => s.state === ReencryptionState.FINISHED,
    );
    expect(done.rowsDone).toBe(0n);
    expect((await kms.stopReencryption({})).status?.state).toBe(ReencryptionState.FINISHED);
  });

  it("stops after the batch under way when asked", async () => {
    const { kms } = clients(a);
    await kms.rotateDataKey({ reason: "more to move" });
    // A long pause between batches of one: it cannot finish before the stop.
    await kms.startReencryption({ batchSize: 1, pause: { seconds: 60n } });
    const stopped = (await kms.stopReencryption({})).status!;
    expect(stopped.state).toBe(ReencryptionState.STOPPED);
    expect(stopped.rowsRemaining).toBeGreaterThan(0n);
    await new Promise((r) => setTimeout(r, 300));
    expect((await kms.getReencryptionStatus({})).status?.state).toBe(ReencryptionState.STOPPED);
  });

  const statusOn = (app: App) => () =>
    clients(app)
      .kms.getReencryptionStatus({})
      .then((r) => r.status!);
  const leftUnderOthers = async (version: number) =>
    (
      await query<{ n: string }>(
        db.url,
        "SELECT count(*) AS n FROM users WHERE NOT (key_versions <@ ARRAY[$1]::int[])",
        [version],
      )
    )[0]!.n;

  it("starts a new pass when the key rotates during the job: nothing is left under an older key", async () => {
    const { kms } = clients(a);
    await kms.rotateDataKey({ reason: "all rows under an older key again" });
    await kms.startReencryption({ batchSize: 10, pause: { seconds: 2n } });
    const partway = await until(statusOn(a), (s) => s.rowsDone > 0n);
    // Six batches two seconds apart: the job is still under way.
    expect(partway.state).toBe(ReencryptionState.RUNNING);
    const newer = (await kms.rotateDataKey({ reason: "during the job" })).key!.version;
    const done = await until(statusOn(a), (s) => s.state === ReencryptionState.FINISHED);
    expect(done.targetVersion).toBe(newer);
    expect(await leftUnderOthers(newer)).toBe("0");
  }, 120_000);

  it("never commits a batch read before a stop and a new start into the new job", async () => {
    const { kms } = clients(a);
    await kms.rotateDataKey({ reason: "all rows under an older key again" });
    // A pause between batches: the job cannot end before the row is held.
    await kms.startReencryption({ batchSize: 10, pause: { seconds: 1n } });
    // Hold the job row: the worker's next batch, resealed, waits to commit.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT * FROM kms_reencryption WHERE id = 1 FOR UPDATE");
      await until(
        () =>
          query(
            db.url,
            `SELECT 1 FROM pg_stat_activity
              WHERE wait_event_type = 'Lock' AND query LIKE '%FROM kms_reencryption%FOR UPDATE%'`,
          ),
        (rows) => rows.length > 0,
      );
      // Meanwhile: a rotation, then a stop and a new start (what they write).
      const newer = (await kms.rotateDataKey({ reason: "between the jobs" })).key!.version;
      await holder.query(
        `UPDATE kms_reencryption SET generation = generation + 1, target_version = $1,
           cursor_id = 0, rows_done = 0, started_at = now() WHERE id = 1`,
        [newer],
      );
      await holder.query("COMMIT");
      const done = await until(statusOn(a), (s) => s.state === ReencryptionState.FINISHED);
      expect(done.targetVersion).toBe(newer);
      expect(await leftUnderOthers(newer)).toBe("0");
    } finally {
      await holder.end();
    }
  }, 120_000);

  it("with below_version, moves only values under the versions below it", async () => {
    const { kms } = clients(a);
    const current = (await kms.getStatus({})).activeKey!.version;
    const active = (await kms.rotateDataKey({ reason: "below" })).key!.version;
    // Everything is under `current` now: below it, nothing moves.
    await kms.startReencryption({ belowVersion: current });
    const none = await until(statusOn(a), (s) => s.state === ReencryptionState.FINISHED);
    expect(none.rowsDone).toBe(0n);
    expect(await leftUnderOthers(active)).toBe("60");
    await kms.startReencryption({ belowVersion: current + 1 });
    const all = await until(statusOn(a), (s) => s.state === ReencryptionState.FINISHED);
    expect(all.rowsDone).toBe(60n);
    expect(await leftUnderOthers(active)).toBe("0");
  }, 60_000);

  it.each([
    ["a below_version past the int4 key versions", { belowVersion: 2 ** 31 }, "below_version"],
    ["a batch_size over 10000", { batchSize: 10_001 }, "batch_size"],
    ["a pause over an hour", { pause: { seconds: 3601n } }, "pause"],
  ])("refuses %s with INVALID_ARGUMENT naming it, starting nothing", async (_, request, field) => {
    const { kms } = clients(a);
    const before = (await kms.getReencryptionStatus({})).status!;
    const err = ConnectError.from(
      await kms.startReencryption(request).then(
        () => new Error("started"),
        (e: unknown) => e,
      ),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.findDetails(ErrorInfoSchema)[0]?.metadata.field).toBe(field);
    expect((await kms.getReencryptionStatus({})).status).toEqual(before);
  });
});
