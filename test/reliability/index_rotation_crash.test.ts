import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { IndexKeyRotationState, KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import { person, seedUsers } from "../../bench/lib/seed.js";
import { testConfig } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { rejection } from "../helpers/errors.js";
import { startServerProcess, writeServerConfig } from "../helpers/process.js";
import { sleep } from "./load.js";

const USERS = 10_000;

const clients = (port: number) => {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
  return { kms: createClient(KmsService, transport), users: createClient(UserService, transport) };
};

interface Job {
  phase: string;
  state: string;
  cursor_id: number;
  rows_done: string;
}
const jobOf = async (url: string) =>
  (
    await query<Job>(
      url,
      "SELECT phase, state, cursor_id, rows_done FROM kms_index_rotation WHERE id = 1",
    )
  )[0];

describe("index-key rotation killed halfway", () => {
  const dir = mkdtempSync(join(tmpdir(), "kbts-index-kill-"));
  let db: TestDatabase | undefined;
  afterAll(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("on 10 000 users, resumes after SIGKILL and a restart where it stopped: every row indexed once under the new key, lookups and duplicates answered as before throughout", async () => {
    db = await createTestDatabase();
    const conf = writeServerConfig(join(dir, "server.yaml"), db.url);
    await seedUsers(db.url, testConfig(db.url), USERS);
    const first = await startServerProcess(conf);
    // Batches of 500, 100 ms apart, killed a third of the way.
    await clients(first.ports.grpc).kms.rotateIndexKey({
      batchSize: 500,
      pause: { nanos: 100_000_000 },
    });
    for (let i = 0; Number((await jobOf(db.url))?.rows_done ?? 0) < USERS / 3; i++) {
      if (i > 3000) throw new Error("the rotation did not get a third of the way");
      await sleep(20);
    }
    first.server.child.kill("SIGKILL");
    expect(await first.server.exited).toBe("SIGKILL");
    const halfway = (await jobOf(db.url))!;
    expect(halfway).toMatchObject({ phase: "backfill", state: "running" });
    // The cursor says exactly what was indexed: the rows up to it, each once.
    const [indexed] = await query<{ upto: string; after: string }>(
      db.url,
      `SELECT count(*) FILTER (WHERE id <= $1 AND email_hash_b IS NOT NULL AND phone_hash_b IS NOT NULL
                                 AND name_hash_b IS NOT NULL) AS upto,
              count(*) FILTER (WHERE id > $1 AND email_hash_b IS NOT NULL) AS after
         FROM users`,
      [halfway.cursor_id],
    );
    expect(indexed).toEqual({ upto: halfway.rows_done, after: "0" });

    const second = await startServerProcess(conf);
    try {
      const { kms, users } = clients(second.ports.grpc);
      // Lookups, inserts and duplicates while the rotation finishes.
      let running = true;
      const wrong: number[] = [];
      const refused = new Set<string | undefined>();
      const created: { id: bigint; email: string }[] = [];
      const traffic = (async () => {
        for (let round = 0; running || round < 10; round++) {
          const id = 1 + ((round * 7919) % USERS);
          const { user } = await users.lookupUser({
            key: { case: "email", value: person(id).email.toUpperCase() },
          });
          if (user?.id !== BigInt(id)) wrong.push(id);
          const email = `during${round}@example.com`;
          const made = await users.createUser({
            username: `during_${round}`,
            password: "passw0rd-long",
            email,
          });
          created.push({ id: made.user!.id, email });
          const dup = await rejection(
            users.createUser({
              username: `dup_${round}`,
              password: "x-passw0rd",
              email: person(id).email,
            }),
          );
          refused.add(dup.reason);
        }
      })();
      let status = (await kms.getIndexKeyRotationStatus({})).status!;
      for (let i = 0; status.state === IndexKeyRotationState.RUNNING; i++) {
        if (i > 1200) throw new Error("the rotation did not finish after the restart");
        await sleep(50);
        status = (await kms.getIndexKeyRotationStatus({})).status!;
      }
      running = false;
      await traffic;
      expect(status.state).toBe(IndexKeyRotationState.FINISHED);
      expect(wrong).toEqual([]);
      expect(refused).toEqual(new Set(["USER_ALREADY_EXISTS"]));
      // Each seeded row indexed once across both processes: no batch ran twice.
      expect(status.rowsDone).toBe(BigInt(USERS));
      const [left] = await query<{ old: string; missing: string }>(
        db.url,
        `SELECT count(*) FILTER (WHERE email_hash IS NOT NULL OR phone_hash IS NOT NULL OR name_hash IS NOT NULL) AS old,
                count(*) FILTER (WHERE email_hash_b IS NULL) AS missing
           FROM users`,
      );
      expect(left).toEqual({ old: "0", missing: "0" });
      for (const id of [1, 7, USERS / 2, USERS]) {
        const { user } = await users.lookupUser({
          key: { case: "phone", value: person(id).phone },
        });
        expect(user?.id).toBe(BigInt(id));
      }
      for (const c of created.slice(-3)) {
        const { user } = await users.lookupUser({ key: { case: "email", value: c.email } });
        expect(user?.id).toBe(c.id);
      }
    } finally {
      second.server.child.kill("SIGTERM");
      await second.server.exited;
    }
  }, 180_000);
});
