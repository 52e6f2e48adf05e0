import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { describe, expect, it } from "vitest";
import {
  AuditEventKind,
  IndexKeyRotationPhase,
  IndexKeyRotationState,
  KmsService,
} from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import { keyPolicy, rootKeys } from "../../cmd/server/kms.js";
import type { App } from "../../cmd/server/wire.js";
import { background } from "../../internal/biz/context.js";
import { AuditChain } from "../../internal/biz/kms/audit_chain.js";
import { bootstrap } from "../../internal/biz/kms/bootstrap.js";
import { newFieldCipher } from "../../internal/biz/kms/field_cipher.js";
import { loadIndexKeys, newIndexKeyHolder } from "../../internal/biz/kms/index_keys.js";
import { keyMint } from "../../internal/biz/kms/key_mint.js";
import { newKeyring } from "../../internal/biz/kms/keyring.js";
import { encryptionUsage } from "../../internal/biz/kms/kms_usage.js";
import { UserUsecase } from "../../internal/biz/user_usecase.js";
import { newDataKeyRepo } from "../../internal/data/data_key_repo.js";
import { newStoredKeys } from "../../internal/data/stored_key_repo.js";
import { newUserRepo } from "../../internal/data/user_repo.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { testConfig, useTwoInstances } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { rejection } from "../helpers/errors.js";
import { runMigrate } from "../helpers/process.js";
import { sealWithStoredKey } from "../helpers/seal.js";
import { until } from "../helpers/poll.js";

// The blind-index key replaced online on two instances: one rotates, the
// other serves lookups and inserts throughout.

const ctx = useTwoInstances();
const clients = (app: App) => {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` });
  return { kms: createClient(KmsService, transport), users: createClient(UserService, transport) };
};

interface Known {
  id: bigint;
  email: string;
  phone: string;
}

let phones = 3000000;
async function createUsers(app: App, prefix: string, n: number): Promise<Known[]> {
  const made: Known[] = [];
  for (let i = 0; i < n; i++) {
    const email = `${prefix}${i}@example.com`;
    const phone = `+1555${phones++}`;
    const { user } = await clients(app).users.createUser({
      username: `${prefix}_${i}`,
      password: "passw0rd-long",
      email,
      phone,
      name: `${prefix} person`,
    });
    made.push({ id: user!.id, email, phone });
  }
  return made;
}

const indexState = async () =>
  (
    await query<{ slot: number; epoch: number; next: boolean; key: Buffer }>(
      ctx.db.url,
      "SELECT slot, epoch, next_encrypted_key IS NOT NULL AS next, encrypted_key AS key FROM kms_index_keys",
    )
  )[0]!;

const finished = (app: App) =>
  until(
    () =>
      clients(app)
        .kms.getIndexKeyRotationStatus({})
        .then((r) => r.status!),
    (s) => s.state !== IndexKeyRotationState.RUNNING,
  );

describe("blind-index key rotation", () => {
  const known: Known[] = [];

  it("answers every lookup with the same user and refuses every duplicate while the key is replaced", async () => {
    known.push(...(await createUsers(ctx.a, "ik", 60)));
    const before = await indexState();
    expect(before).toMatchObject({ slot: 0, epoch: 1, next: false });
    const onA = clients(ctx.a);
    const onB = clients(ctx.b);
    const hashBefore = (await onA.kms.hashField({ fieldName: "email", value: "ik0@example.com" }))
      .hash;
    const firstPage = await onA.users.listUsers({ name: " ik  person", pageSize: 40 });
    expect(firstPage.users).toHaveLength(40);

    // Lookups (any case and spacing) on b, inserts and duplicates on a, throughout.
    let running = true;
    const wrong: string[] = [];
    let lookups = 0;
    const reader = (async () => {
      for (let i = 0; running || i < 20; i++) {
        const k = known[(i * 7) % known.length]!;
        const byEmail = await onB.users.lookupUser({
          key: { case: "email", value: ` ${k.email.toUpperCase()}` },
        });
        const byPhone = await onB.users.lookupUser({ key: { case: "phone", value: k.phone } });
        if (byEmail.user?.id !== k.id) wrong.push(`email of ${k.id}`);
        if (byPhone.user?.id !== k.id) wrong.push(`phone of ${k.id}`);
        lookups++;
      }
    })();
    const duplicates: (string | undefined)[] = [];
    const writer = (async () => {
      for (let i = 0; running || i < 5; i++) {
        known.push(...(await createUsers(ctx.a, `new${i}x`, 1)));
        const taken = known[(i * 13) % known.length]!;
        const dup = await rejection(
          onA.users.createUser({
            username: `dup_${i}`,
            password: "passw0rd-long",
            email: taken.email.toUpperCase(),
          }),
        );
        duplicates.push(dup.reason);
      }
    })();

    const asked = await Promise.all([
      onA.kms.rotateIndexKey({ batchSize: 4, pause: { nanos: 20_000_000 } }),
      onB.kms.rotateIndexKey({ batchSize: 4 }),
    ]);
    // One rotation: the other call answers the one under way.
    expect(asked.map((r) => r.started).sort()).toEqual([false, true]);
    const status = await finished(ctx.b);
    running = false;
    await Promise.all([reader, writer]);

    expect(status).toMatchObject({
      phase: IndexKeyRotationPhase.DONE,
      state: IndexKeyRotationState.FINISHED,
      rowsFailed: 0n,
      rowsRemaining: 0n,
    });
    expect(status.rowsDone).toBeGreaterThan(0n);
    expect(status.switchedAt).toBeDefined();
    expect(wrong).toEqual([]);
    expect(lookups).toBeGreaterThan(20);
    expect(duplicates.length).toBeGreaterThan(4);
    expect(new Set(duplicates)).toEqual(new Set(["USER_ALREADY_EXISTS"]));

    // The new key fills slot 1; the old key is gone and its column empty.
    const after = await indexState();
    expect(after).toMatchObject({ slot: 1, epoch: 3, next: false });
    expect(after.key.equals(before.key)).toBe(false);
    const [columns] = await query<Record<string, string>>(
      ctx.db.url,
      `SELECT count(email_hash) AS a_email, count(phone_hash) AS a_phone, count(name_hash) AS a_name,
              count(*) FILTER (WHERE email_encrypted IS NOT NULL AND email_hash_b IS NULL) AS email_missing,
              count(*) FILTER (WHERE phone_encrypted IS NOT NULL AND phone_hash_b IS NULL) AS phone_missing,
              count(*) FILTER (WHERE name_encrypted IS NOT NULL AND name_hash_b IS NULL) AS name_missing
         FROM users`,
    );
    expect(columns).toEqual({
      a_email: "0",
      a_phone: "0",
      a_name: "0",
      email_missing: "0",
      phone_missing: "0",
      name_missing: "0",
    });

    // Both instances hash under the new key, and find every user, old and new.
    const hashA = (await onA.kms.hashField({ fieldName: "email", value: "ik0@example.com" })).hash;
    const hashB = (await onB.kms.hashField({ fieldName: "email", value: "IK0@example.com" })).hash;
    expect(hashA).toBe(hashB);
    expect(hashA).not.toBe(hashBefore);
    for (const k of known) {
      for (const c of [onA, onB]) {
        expect(
          (await c.users.lookupUser({ key: { case: "email", value: k.email } })).user?.id,
        ).toBe(k.id);
        expect(
          (await c.users.lookupUser({ key: { case: "phone", value: k.phone } })).user?.id,
        ).toBe(k.id);
      }
    }
    const listed = await onB.users.listUsers({ name: "ik person", pageSize: 100 });
    expect(listed.users).toHaveLength(60);
    // A page token from before the rotation still reads the next page.
    const rest = await onB.users.listUsers({
      name: "ik person",
      pageSize: 40,
      pageToken: firstPage.nextPageToken,
    });
    expect(rest.users.map((u) => u.id)).toEqual(listed.users.slice(40).map((u) => u.id));
    const login = await onB.users.verifyPassword({
      login: "IK5@example.com",
      password: "passw0rd-long",
    });
    expect(login.userId).toBe(known[5]!.id);

    // Audited: started, then replaced; the chain holds.
    const events = (await onA.kms.listAuditEvents({ pageSize: 100 })).events.map((e) => e.kind);
    expect(events).toContain(AuditEventKind.INDEX_KEY_ROTATION_STARTED);
    expect(events).toContain(AuditEventKind.INDEX_KEY_ROTATED);
    expect((await onA.kms.verifyAuditTrail({})).intact).toBe(true);
  }, 120_000);

  it("refuses to revert its migrations while the indexes live in the second column, dropping none of theirs", async () => {
    // The last applied is the password_hash expand (a server applies no
    // contract): it reverts first, then 000018 refuses; it is re-applied below.
    const run = await runMigrate(["down", "5", "--database-url", ctx.db.url]);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toMatch(/reverted 000019_users_password_hash_expand/);
    expect(run.output).toMatch(/rotate the index key until it fills slot 0/);
    const [{ n }] = (await query<{ n: string }>(
      ctx.db.url,
      "SELECT count(*) AS n FROM pg_indexes WHERE indexname LIKE 'idx_users_%_hash_b%'",
    )) as [{ n: string }];
    expect(n).toBe("3");
    const [{ trigger }] = (await query<{ trigger: string }>(
      ctx.db.url,
      "SELECT count(*) AS trigger FROM pg_trigger WHERE tgname = 'users_index_slots'",
    )) as [{ trigger: string }];
    expect(trigger).toBe("1");
    const again = await runMigrate(["up", "--phase", "expand", "--database-url", ctx.db.url]);
    expect(again.code, again.output).toBe(0);
    expect(again.output).toMatch(/applied {2}000019_users_password_hash_expand/);
  }, 60_000);

  it("rotates again into the first column, and refuses an index written in the column no key fills", async () => {
    const onB = clients(ctx.b);
    expect((await onB.kms.rotateIndexKey({ batchSize: 50 })).started).toBe(true);
    await finished(ctx.a);
    expect(await indexState()).toMatchObject({ slot: 0, epoch: 5, next: false });
    for (const k of known.slice(0, 10)) {
      expect(
        (await clients(ctx.a).users.lookupUser({ key: { case: "email", value: k.email } })).user
          ?.id,
      ).toBe(k.id);
    }
    const [{ id }] = (await query<{ id: number }>(
      ctx.db.url,
      "SELECT min(id) AS id FROM users",
    )) as [{ id: number }];
    await expect(
      query(ctx.db.url, "UPDATE users SET email_hash_b = repeat('a', 64) WHERE id = $1", [id]),
    ).rejects.toMatchObject({ code: "KR003" });
    // The right column, under keys of another epoch (two rotations fill the same columns).
    await expect(
      query(
        ctx.db.url,
        "UPDATE users SET email_hash = repeat('b', 64), index_epoch = index_epoch - 2 WHERE id = $1",
        [id],
      ),
    ).rejects.toMatchObject({ code: "KR003" });
  }, 60_000);

  it("stops before the switch while a value cannot be read, keeps both keys serving, and resumes when asked again", async () => {
    const onA = clients(ctx.a);
    // One user under a key that is then revoked: its values cannot be read.
    await onA.kms.rotateDataKey({ reason: "test" });
    const [lost] = await createUsers(ctx.a, "lost", 1);
    const version = (await onA.kms.rotateDataKey({ reason: "test" })).previousVersion;
    await onA.kms.revokeDataKey({ version, reason: "test" });

    expect((await onA.kms.rotateIndexKey({ batchSize: 50 })).started).toBe(true);
    const failed = await finished(ctx.a);
    expect(failed).toMatchObject({
      phase: IndexKeyRotationPhase.BACKFILL,
      state: IndexKeyRotationState.FAILED,
      rowsFailed: 1n,
    });
    expect(failed.lastError).toMatch(/^1 user\(s\) have a value that could not be indexed/);
    expect(failed.lastError).not.toContain("lost0@");
    expect(await indexState()).toMatchObject({ slot: 0, next: true });
    for (const k of known.slice(0, 5)) {
      expect(
        (await clients(ctx.b).users.lookupUser({ key: { case: "email", value: k.email } })).user
          ?.id,
      ).toBe(k.id);
    }
    const dup = await rejection(
      clients(ctx.b).users.createUser({
        username: "dup_failed",
        password: "passw0rd-long",
        email: known[0]!.email,
      }),
    );
    expect(dup.reason).toBe("USER_ALREADY_EXISTS");

    await onA.users.deleteUser({ id: lost!.id });
    expect((await onA.kms.rotateIndexKey({})).started).toBe(true);
    expect(await finished(ctx.b)).toMatchObject({
      phase: IndexKeyRotationPhase.DONE,
      state: IndexKeyRotationState.FINISHED,
    });
    expect(await indexState()).toMatchObject({ slot: 1, next: false });
  }, 60_000);

  it("stops before the switch when two users index alike under the new key only, and resumes once resolved", async () => {
    const onA = clients(ctx.a);
    const [first, second] = await createUsers(ctx.a, "clash", 2);
    // Written outside the service: the second row holds the first's address,
    // sealed for its own row, while its index still says its own.
    const sealed = await sealWithStoredKey(
      ctx.db.url,
      "store",
      first!.email,
      "users.email",
      `users:${second!.id}`,
    );
    await query(
      ctx.db.url,
      "UPDATE users SET email_encrypted = $1, email_key_version = $2 WHERE id = $3",
      [sealed.ciphertext, sealed.version, second!.id],
    );
    const before = await indexState();

    expect((await onA.kms.rotateIndexKey({ batchSize: 50 })).started).toBe(true);
    const failed = await finished(ctx.a);
    expect(failed).toMatchObject({
      phase: IndexKeyRotationPhase.BACKFILL,
      state: IndexKeyRotationState.FAILED,
    });
    expect(failed.lastError).toMatch(/indexes under the new key like another user's/);
    expect(failed.lastError).not.toContain("clash0@");
    // Both keys still serve: nothing switched.
    expect(await indexState()).toMatchObject({ slot: before.slot, next: true });
    expect(
      (await clients(ctx.b).users.lookupUser({ key: { case: "email", value: first!.email } })).user
        ?.id,
    ).toBe(first!.id);

    await onA.users.deleteUser({ id: second!.id });
    expect((await onA.kms.rotateIndexKey({})).started).toBe(true);
    expect(await finished(ctx.b)).toMatchObject({
      phase: IndexKeyRotationPhase.DONE,
      state: IndexKeyRotationState.FINISHED,
    });
    expect(await indexState()).toMatchObject({ slot: before.slot === 0 ? 1 : 0, next: false });
  }, 60_000);

  it("makes a late instance look up and write under the keys in use", async () => {
    // The rotation stays in its first phase: one row per batch, an hour apart.
    const onA = clients(ctx.a);
    const asked = await onA.kms.rotateIndexKey({ batchSize: 1, pause: { seconds: 3600n } });
    expect(asked.started).toBe(true);
    const pool = new pg.Pool({ connectionString: ctx.db.url, max: 4 });
    try {
      const conf = testConfig(ctx.db.url).kms!;
      const log = createLogger({ level: "silent", format: "json" });
      // The KMS's parts, to give one an index-key holder of the past.
      const audit = new AuditChain();
      const keys = newDataKeyRepo(pool, audit);
      const stored = newStoredKeys(pool, audit);
      const roots = rootKeys(conf);
      const keyring = newKeyring(keys, roots, 30_000);
      const mint = keyMint(roots, keyPolicy(conf));
      const init = await bootstrap({ stored, keys, keyring, roots, mint, audit, log });
      const inUse = init.index;
      expect(inUse.next).toBeDefined();
      // What an instance that missed the start holds: the current key alone.
      const late = () => {
        const holder = newIndexKeyHolder(
          {
            epoch: inUse.epoch - 1,
            slot: inUse.slot,
            key: Buffer.from(inUse.key),
            next: undefined,
          },
          () => loadIndexKeys(stored, roots),
        );
        const users = new UserUsecase(
          newUserRepo(pool),
          newFieldCipher(keyring, holder, init.pageTokens, encryptionUsage()),
        );
        return { holder, users };
      };

      const reader = late();
      const k = known[3]!;
      expect((await reader.users.lookup({ email: k.email }, "full")).id).toBe(Number(k.id));
      expect(reader.holder.epoch()).toBe(inUse.epoch);

      // Its first write is refused by the database, then made again under both keys.
      const writer = late();
      const made = await writer.users.create(
        {
          username: "late_writer",
          password: "passw0rd-long",
          email: "late@example.com",
          phone: "",
          name: "",
        },
        background,
      );
      expect(writer.holder.epoch()).toBe(inUse.epoch);
      const [row] = await query<{ a: string | null; b: string | null }>(
        ctx.db.url,
        "SELECT email_hash AS a, email_hash_b AS b FROM users WHERE id = $1",
        [made.id],
      );
      expect(row!.a).toMatch(/^[0-9a-f]{64}$/);
      expect(row!.b).toMatch(/^[0-9a-f]{64}$/);
      expect(
        (
          await clients(ctx.b).users.lookupUser({
            key: { case: "email", value: "LATE@example.com" },
          })
        ).user?.id,
      ).toBe(BigInt(made.id));
    } finally {
      await pool.end();
    }
  }, 60_000);
});
