import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import { AuditChain } from "../../internal/biz/kms/audit_chain.js";
import { newReencryptionRepo } from "../../internal/data/reencryption_repo.js";
import { newUserStore } from "../../internal/data/user_store.js";
import { useTestApp } from "../helpers/app.js";

// The batch statement of the re-encryption job, driven directly: whatever a
// user wrote since the job read a row is kept, field by field.

const ctx = useTestApp();
let pool: pg.Pool;
beforeAll(() => {
  pool = new pg.Pool({ connectionString: ctx.db.url, max: 2 });
});
afterAll(() => pool?.end());

interface Stored {
  email_encrypted: Buffer;
  email_key_version: number;
  name_encrypted: Buffer;
  name_key_version: number;
  phone_encrypted: Buffer | null;
  key_versions: number[];
}

const read = async (id: number) =>
  (
    await pool.query<Stored>(
      `SELECT email_encrypted, email_key_version, name_encrypted, name_key_version,
              phone_encrypted, key_versions FROM users WHERE id = $1`,
      [id],
    )
  ).rows[0]!;

describe("a re-encryption batch", () => {
  it("moves the fields still as read, keeps the ones a user changed, and counts only rows it changed", async () => {
    const users = createClient(
      UserService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${ctx.app.grpcPort}` }),
    );
    const ids: number[] = [];
    for (const n of [1, 2]) {
      const { user } = await users.createUser({
        username: `batch_${n}`,
        password: "passw0rd-long",
        email: `batch${n}@example.com`,
        name: `Batch ${n}`,
      });
      ids.push(Number(user!.id));
    }
    const [first, second] = [await read(ids[0]!), await read(ids[1]!)];
    const stale = Buffer.from("not what the row holds");
    const repo = newReencryptionRepo(pool, new AuditChain(), newUserStore, pool);
    // The chain has no key here: a start would need it for its audit event,
    // so the job row is written as a start leaves it.
    await pool.query(
      `INSERT INTO kms_reencryption (id, state, target_version, batch_size, pause_ms)
       VALUES (1, 'running', 99, 10, 0)`,
    );
    const job = (await repo.job())!;
    const result = await repo.commitBatch({
      read: job,
      lastId: ids[1]!,
      moves: [
        {
          // The user changed the email since it was read; the name is as read.
          id: ids[0]!,
          fields: {
            email: { old: stale, ciphertext: Buffer.from("new email"), keyVersion: 77 },
            name: {
              old: first.name_encrypted,
              ciphertext: Buffer.from("new name"),
              keyVersion: 77,
            },
          },
        },
        {
          // Every field changed since: the row is left alone.
          id: ids[1]!,
          fields: { email: { old: stale, ciphertext: Buffer.from("x"), keyVersion: 77 } },
        },
      ],
      failed: 0,
      lastError: undefined,
    });
    expect(result).toEqual({ running: true, moved: 1 });

    const after = await read(ids[0]!);
    expect(after.email_encrypted).toEqual(first.email_encrypted);
    expect(after.email_key_version).toBe(first.email_key_version);
    expect(after.name_encrypted).toEqual(Buffer.from("new name"));
    expect(after.name_key_version).toBe(77);
    expect(after.phone_encrypted).toBeNull();
    expect([...after.key_versions].sort((a, b) => a - b)).toEqual(
      [first.email_key_version, 77].sort((a, b) => a - b),
    );
    expect(await read(ids[1]!)).toEqual(second);
    expect((await repo.job())!).toMatchObject({ cursorId: ids[1]!, rowsDone: 1n });
  });

  it("does not move a value whose key was revoked after the job read it", async () => {
    const kms = createClient(
      KmsService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${ctx.app.grpcPort}` }),
    );
    const users = createClient(
      UserService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${ctx.app.grpcPort}` }),
    );
    const { user } = await users.createUser({
      username: "batch_revoked",
      password: "passw0rd-long",
      email: "revoked@example.com",
    });
    const id = Number(user!.id);
    const before = await read(id);
    // Read by the job (as below), then the key is revoked, then the batch commits.
    await kms.rotateDataKey({ reason: "test" });
    await kms.revokeDataKey({ version: before.email_key_version, reason: "test" });
    const repo = newReencryptionRepo(pool, new AuditChain(), newUserStore, pool);
    // The revocation woke the service's own worker: let it end its pass, then
    // put the job back as running without waking anyone, so that this batch
    // is the only one in flight.
    for (let i = 0; (await repo.job())?.state === "running"; i++) {
      if (i > 300) throw new Error("the service's re-encryption pass did not end");
      await new Promise((r) => setTimeout(r, 100));
    }
    await pool.query("UPDATE kms_reencryption SET state = 'running', finished_at = NULL");
    const job = (await repo.job())!;
    expect(job.state).toBe("running");
    const result = await repo.commitBatch({
      read: job,
      lastId: id,
      moves: [
        {
          id,
          fields: {
            email: { old: before.email_encrypted, ciphertext: Buffer.from("x"), keyVersion: 77 },
          },
        },
      ],
      failed: 0,
      lastError: undefined,
    });
    expect(result).toEqual({ running: true, moved: 0 });
    expect(await read(id)).toEqual(before);
  });
});
