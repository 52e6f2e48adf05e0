import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it } from "vitest";
import { KmsService, ReencryptionState } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import { ACTIVE, OLD_VERSIONS, person, seedUsers } from "../../bench/lib/seed.js";
import { testConfig } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { startServerProcess, writeServerConfig } from "../helpers/process.js";
import { sleep } from "./load.js";

// Users written with SQL (and the service's own ciphertexts), a third under
// each of data keys 1, 2 and 3, key 4 active.
const USERS = 20_000;

const clients = (port: number) => {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
  return { kms: createClient(KmsService, transport), users: createClient(UserService, transport) };
};

interface Job {
  state: string;
  cursor_id: number;
  rows_done: string;
}
const jobOf = async (url: string) =>
  (
    await query<Job>(url, "SELECT state, cursor_id, rows_done FROM kms_reencryption WHERE id = 1")
  )[0];

describe("re-encryption killed halfway", () => {
  const dir = mkdtempSync(join(tmpdir(), "kbts-reenc-kill-"));
  let db: TestDatabase | undefined;
  afterAll(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("on 20 000 users under three keys, resumes after SIGKILL and a restart where it stopped: every row moved once, none lost, every user reads as before, a client's updates during the job kept", async () => {
    db = await createTestDatabase();
    const conf = writeServerConfig(join(dir, "server.yaml"), db.url);
    await seedUsers(db.url, testConfig(db.url), USERS);
    const first = await startServerProcess(conf);
    const { kms } = clients(first.ports.grpc);
    const active = ACTIVE;
    // Batches of 500, 100 ms apart: several seconds of work, killed a third of the way.
    await kms.startReencryption({ batchSize: 500, pause: { nanos: 100_000_000 } });
    for (let i = 0; Number((await jobOf(db.url))?.rows_done ?? 0) < USERS / 3; i++) {
      if (i > 3000) throw new Error("the job did not get a third of the way");
      await sleep(20);
    }
    first.server.child.kill("SIGKILL");
    expect(await first.server.exited).toBe("SIGKILL");
    const halfway = (await jobOf(db.url))!;
    expect(halfway.state).toBe("running");
    expect(Number(halfway.rows_done)).toBeLessThan(USERS);
    // What the cursor says is done is exactly what moved: the rows up to it.
    const moved = await query<{ n: string }>(
      db.url,
      "SELECT count(*) AS n FROM users WHERE id <= $1 AND key_versions <@ ARRAY[$2]::int[]",
      [halfway.cursor_id, active],
    );
    expect(moved[0]!.n).toBe(halfway.rows_done);

    const second = await startServerProcess(conf);
    try {
      const again = clients(second.ports.grpc).kms;
      // A client changes users all over the table while the job finishes: its writes win.
      const written = new Map<number, string>();
      let writing = true;
      const writer = (async () => {
        for (let round = 0; writing && round < 2000; round++) {
          const id = 1 + ((round * 7919) % USERS);
          const name = `Changed ${round}`;
          await clients(second.ports.grpc).users.updateUser({
            id: BigInt(id),
            name,
            updateMask: { paths: ["name"] },
          });
          written.set(id, name);
        }
      })();
      let status = (await again.getReencryptionStatus({})).status!;
      for (let i = 0; status.state === ReencryptionState.RUNNING; i++) {
        if (i > 1200) throw new Error("the job did not finish after the restart");
        await sleep(50);
        status = (await again.getReencryptionStatus({})).status!;
      }
      writing = false;
      await writer;
      expect(written.size).toBeGreaterThan(0);
      for (const [id, name] of written) {
        const { user } = await clients(second.ports.grpc).users.getUser({ id: BigInt(id) });
        expect(user?.name).toBe(name);
      }
      expect(status.state).toBe(ReencryptionState.FINISHED);
      // Each row counted once across both processes: no batch ran twice.
      expect(status.rowsDone).toBe(BigInt(USERS));
      const left = await query<{ n: string }>(
        db.url,
        "SELECT count(*) AS n FROM users WHERE NOT (key_versions <@ ARRAY[$1]::int[])",
        [active],
      );
      expect(left[0]!.n).toBe("0");
      // Every user reads as before; the older keys protect nothing now.
      for (const id of [1, 7, USERS / 2, USERS]) {
        const { user } = await clients(second.ports.grpc).users.lookupUser({
          key: { case: "email", value: person(id).email },
        });
        expect(user?.name).toBe(written.get(id) ?? person(id).name);
        expect(user?.phone).toBe(person(id).phone);
      }
      const { keyUsage, unreferencedVersions } = await again.getStatus({});
      expect(keyUsage.map((u) => [u.version, u.protectedValues])).toEqual([
        [active, BigInt(3 * USERS)], // values: email, phone and name of each
      ]);
      expect(unreferencedVersions).toEqual(OLD_VERSIONS);
    } finally {
      second.server.child.kill("SIGTERM");
      await second.server.exited;
    }
  }, 180_000);
});
