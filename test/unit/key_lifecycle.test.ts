import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { background, type Context } from "../../internal/biz/context.js";
import { BizError, reasonName } from "../../internal/biz/errors.js";
import type { DataKey, NewDataKey } from "../../internal/biz/kms/data_keys.js";
import { announcement } from "../../internal/biz/kms/key_events.js";
import { KeyLifecycle } from "../../internal/biz/kms/key_lifecycle.js";
import { keyMint } from "../../internal/biz/kms/key_mint.js";
import { newKeyring } from "../../internal/biz/kms/keyring.js";
import { RootKeys } from "../../internal/biz/kms/root_keys.js";
import { FakeDataKeys } from "./fakes/data_keys.js";
import { dataKeyRow, silentLog, TEST_POLICY } from "./fakes/keys.js";

// KeyLifecycle over in-memory keys: what it asks the repository, and what
// each change records. The repository's own SQL is tested on PostgreSQL.

const POLICY = TEST_POLICY;
const silent = silentLog;
const inAnHour = () => new Date(Date.now() + 3600_000);
const aSecondAgo = () => new Date(Date.now() - 1000);

/** The lifecycle over `rows` (default: version 1 active, fresh) and the fakes it uses. */
function newTestLifecycle(
  rows: (rootKey: Buffer) => DataKey[] = (k) => [
    dataKeyRow(k, 1, "active", { expiresAt: inAnHour() }),
  ],
  keysOf: (rows: DataKey[]) => FakeDataKeys = (r) => new FakeDataKeys(r),
) {
  const rootKey = randomBytes(32);
  const roots = new RootKeys(rootKey);
  const keys = keysOf(rows(rootKey));
  const keyring = newKeyring(keys, roots, 60_000);
  const sut = new KeyLifecycle(keys, keyring, keyMint(roots, POLICY), POLICY, silent);
  return { sut, keys, keyring, rootKey, roots };
}

/** "NOT_FOUND KEY_NOT_FOUND" for a BizError: what a client sees. */
async function failure(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof BizError)) throw new Error(`expected a BizError, got ${String(err)}`);
  return `${err.code} ${reasonName(err.reason).reason}`;
}

const kinds = (keys: FakeDataKeys) => keys.changes.map((c) => c.kind);
const caller: Context = { ...background, caller: { name: "operator" } };

describe("KeyLifecycle.rotate", () => {
  it("When asked to rotate, Then the next version is active, the previous inactive, and the caller and reason are recorded", async () => {
    const { sut, keys } = newTestLifecycle();

    const rotation = await sut.rotate("compromise drill", caller);

    expect(rotation).toMatchObject({ rotated: true, key: { version: 2, status: "active" } });
    expect(rotation.previous?.version).toBe(1);
    expect(keys.row(1).status).toBe("inactive");
    expect(keys.changes).toEqual([
      {
        kind: "key_rotated",
        actor: "operator",
        details: { version: "2", previous_version: "1", reason: "compromise drill" },
      },
    ]);
  });

  it("When no reason is given, Then the rotation is recorded as on demand, expiring after the rotate interval", async () => {
    const { sut, keys } = newTestLifecycle();

    const { key } = await sut.rotate("");

    expect(keys.changes[0]!.details.reason).toBe("on demand");
    expect(keys.changes[0]!.actor).toBe("system");
    expect(key.expiresAt!.getTime()).toBeGreaterThan(Date.now() + POLICY.rotateIntervalMs - 60_000);
  });

  it("When the active key is cached, Then a rotation makes the keyring forget it", async () => {
    const { sut, keyring } = newTestLifecycle();
    expect((await keyring.active()).version).toBe(1);

    await sut.rotate("next");

    expect(keyring.activeNow()).toBeUndefined();
    expect((await keyring.active()).version).toBe(2);
  });

  it("When the database is under a root key this instance does not hold, Then ROOT_KEY_MISMATCH and no key is made", async () => {
    const { sut, keys } = newTestLifecycle();
    keys.rootKeyId = "another-deployments-root-key";

    expect(await failure(sut.rotate("next"))).toBe("FAILED_PRECONDITION ROOT_KEY_MISMATCH");
    expect(keys.rows).toHaveLength(1);
    expect(keys.changes).toEqual([]);
  });
});

/** Another instance rotates just before each of this one's rotations takes the lock. */
class RacedKeys extends FakeDataKeys {
  override async rotate(
    make: (version: number, rootKeyId: string | undefined) => NewDataKey,
    onlyIf?: (active: DataKey | undefined) => boolean,
    ctx?: Context,
  ) {
    await super.rotate((v, id) => ({ ...make(v, id), metadata: { reason: "other instance" } }));
    return super.rotate(make, onlyIf, ctx);
  }
}

/** A store whose active key never moves (every rotation declines). */
class StuckKeys extends FakeDataKeys {
  override async rotate() {
    const active = (await this.active())!;
    return { key: active, previous: undefined, rotated: false };
  }
}

describe("KeyLifecycle.revoke", () => {
  it("When the active key is revoked, Then it is rotated out first and the new key is active", async () => {
    const { sut, keys } = newTestLifecycle();

    const { key, active } = await sut.revoke(1, "leaked", caller);

    expect(key).toMatchObject({ version: 1, status: "revoked" });
    expect(active).toMatchObject({ version: 2, status: "active" });
    expect(keys.changes).toEqual([
      {
        kind: "key_rotated",
        actor: "operator",
        details: { version: "2", previous_version: "1", reason: "rotated to revoke version 1" },
      },
      { kind: "key_revoked", actor: "operator", details: { version: "1", reason: "leaked" } },
    ]);
    // Each announced to every instance as it commits.
    expect(keys.changes.map(announcement)).toEqual(["rotated:2", "revoked:1"]);
  });

  it("When another instance rotated the key out meanwhile, Then the rotation to revoke declines (onlyIf) and only the revocation follows", async () => {
    const { sut, keys } = newTestLifecycle(undefined, (rows) => new RacedKeys(rows));

    const { key, active } = await sut.revoke(1, "leaked");

    expect(key.status).toBe("revoked");
    expect(active.version).toBe(2);
    expect(keys.rows).toHaveLength(2);
    expect(kinds(keys)).toEqual(["key_rotated", "key_revoked"]);
    expect(keys.changes[0]!.details.reason).toBe("other instance");
  });

  it("When an inactive key is revoked, Then no key is rotated", async () => {
    const { sut, keys } = newTestLifecycle((k) => [
      dataKeyRow(k, 1, "inactive"),
      dataKeyRow(k, 2, "active", { expiresAt: inAnHour() }),
    ]);

    const { active } = await sut.revoke(1, "retired");

    expect(active.version).toBe(2);
    expect(kinds(keys)).toEqual(["key_revoked"]);
  });

  it("When the key is revoked already, Then it stays revoked and the new reason is recorded too", async () => {
    const { sut, keys } = newTestLifecycle((k) => [
      dataKeyRow(k, 1, "revoked"),
      dataKeyRow(k, 2, "active", { expiresAt: inAnHour() }),
    ]);

    const { key, active } = await sut.revoke(1, "again");

    expect(key).toMatchObject({ version: 1, status: "revoked" });
    expect(active.version).toBe(2);
    expect(keys.changes).toEqual([
      { kind: "key_revoked", actor: "system", details: { version: "1", reason: "again" } },
    ]);
  });

  it("When no key has the version, Then NOT_FOUND KEY_NOT_FOUND", async () => {
    const { sut } = newTestLifecycle();

    expect(await failure(sut.revoke(7, "typo"))).toBe("NOT_FOUND KEY_NOT_FOUND");
  });

  it("When the active key cannot be rotated out, Then UNAVAILABLE KMS_NOT_READY and it is not revoked", async () => {
    const { sut, keys } = newTestLifecycle(undefined, (rows) => new StuckKeys(rows));

    expect(await failure(sut.revoke(1, "leaked"))).toBe("UNAVAILABLE KMS_NOT_READY");
    expect(keys.row(1).status).toBe("active");
  });

  it("When a key is revoked, Then the keyring forgets, and the key no longer decrypts", async () => {
    const { sut, keyring } = newTestLifecycle((k) => [
      dataKeyRow(k, 1, "inactive"),
      dataKeyRow(k, 2, "active", { expiresAt: inAnHour() }),
    ]);
    expect((await keyring.forDecryption(1)).version).toBe(1);

    await sut.revoke(1, "leaked");

    expect(keyring.forDecryptionNow(1)).toBeUndefined();
    expect(await failure(keyring.forDecryption(1))).toBe("FAILED_PRECONDITION KEY_REVOKED");
  });
});

describe("KeyLifecycle.rotateIfDue", () => {
  it("When the active key is fresh, Then onlyIf declines: no rotation, nothing recorded", async () => {
    const { sut, keys } = newTestLifecycle();

    expect(await sut.rotateIfDue()).toBeUndefined();
    expect(keys.rows).toHaveLength(1);
    expect(keys.changes).toEqual([]);
  });

  it("When the active key is past expires_at, Then it is rotated, as scheduled", async () => {
    const { sut, keys } = newTestLifecycle((k) => [
      dataKeyRow(k, 1, "active", { expiresAt: aSecondAgo() }),
    ]);

    const rotation = await sut.rotateIfDue();

    expect(rotation?.key.version).toBe(2);
    expect(keys.changes[0]).toMatchObject({
      kind: "key_rotated",
      details: { reason: "scheduled" },
    });
  });

  it("When the active key has sealed maxEncryptionsPerKey values, Then it is rotated", async () => {
    const { sut } = newTestLifecycle((k) => [
      dataKeyRow(k, 1, "active", {
        expiresAt: inAnHour(),
        encryptionCount: BigInt(POLICY.maxEncryptionsPerKey),
      }),
    ]);

    expect((await sut.rotateIfDue())?.key.version).toBe(2);
  });

  it("When there is no active key, Then one is generated", async () => {
    const { sut, keys } = newTestLifecycle(() => []);

    expect((await sut.rotateIfDue())?.key.version).toBe(1);
    expect(kinds(keys)).toEqual(["key_generated"]);
  });

  it("When ten instances' timers fire together on a due key, Then exactly one rotates", async () => {
    const rootKey = randomBytes(32);
    const keys = new FakeDataKeys([dataKeyRow(rootKey, 1, "active", { expiresAt: aSecondAgo() })]);
    const instances = Array.from({ length: 10 }, () => {
      const roots = new RootKeys(rootKey);
      const keyring = newKeyring(keys, roots, 60_000);
      return new KeyLifecycle(keys, keyring, keyMint(roots, POLICY), POLICY, silent);
    });

    const rotations = await Promise.all(instances.map((sut) => sut.rotateIfDue()));

    expect(rotations.filter((r) => r !== undefined)).toHaveLength(1);
    expect(keys.rows).toHaveLength(2);
  });
});

describe("KeyLifecycle.maintenance", () => {
  it("When inactive keys are past expires_at, Then they expire, once recorded, the keyring forgets, and nothing is deleted", async () => {
    const { sut, keys, keyring } = newTestLifecycle((k) => [
      dataKeyRow(k, 1, "inactive", { expiresAt: aSecondAgo() }),
      dataKeyRow(k, 2, "inactive", { expiresAt: inAnHour() }),
      dataKeyRow(k, 3, "inactive", { expiresAt: aSecondAgo() }),
      dataKeyRow(k, 4, "active", { expiresAt: inAnHour() }),
    ]);
    await keyring.active();

    const report = await sut.maintenance();

    expect(report).toEqual({ expiredVersions: [1, 3], rotation: undefined });
    expect(keys.rows.map((r) => r.status)).toEqual(["expired", "inactive", "expired", "active"]);
    expect(keys.changes).toEqual([
      { kind: "key_expired", actor: "system", details: { versions: "1,3" } },
    ]);
    expect(announcement(keys.changes[0]!)).toBe("expired");
    expect(keyring.activeNow()).toBeUndefined();
  });

  it("When the active key is due too, Then it is rotated first, and expires later with the others", async () => {
    const { sut, keys } = newTestLifecycle((k) => [
      dataKeyRow(k, 1, "active", { expiresAt: aSecondAgo() }),
    ]);

    const first = await sut.maintenance();
    // Rotated out, version 1 is inactive and already past its expiry.
    expect(first.rotation?.key.version).toBe(2);
    expect(first.expiredVersions).toEqual([1]);
    expect(kinds(keys)).toEqual(["key_rotated", "key_expired"]);
  });

  it("When nothing is due, Then maintenance reports nothing and records nothing", async () => {
    const { sut, keys, keyring } = newTestLifecycle();
    const cached = await keyring.active();

    expect(await sut.maintenance()).toEqual({ expiredVersions: [], rotation: undefined });
    expect(keys.changes).toEqual([]);
    expect(keyring.activeNow()).toBe(cached);
  });
});
