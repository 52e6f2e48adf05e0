import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { pageTokens } from "../../internal/biz/paging.js";
import { isDataCorrupt, isKeyRevoked } from "../../internal/biz/kms/errors.js";
import { newFieldCipher } from "../../internal/biz/kms/field_cipher.js";
import { newIndexKeyHolder, type IndexKeys } from "../../internal/biz/kms/index_keys.js";
import { newKeyring } from "../../internal/biz/kms/keyring.js";
import { encryptionUsage } from "../../internal/biz/kms/kms_usage.js";
import { RootKeys } from "../../internal/biz/kms/root_keys.js";
import type { DataKey } from "../../internal/biz/kms/data_keys.js";
import { FakeDataKeys } from "./fakes/data_keys.js";
import { dataKeyRow } from "./fakes/keys.js";

// The keyring and field cipher over an in-memory key store: what they do with
// the rows they are given. The real store is tested against PostgreSQL.

const rootKey = randomBytes(32);

const row = (version: number, status: DataKey["status"]) => dataKeyRow(rootKey, version, status);

const nextTurn = () => new Promise((r) => setImmediate(r));

describe("keyring", () => {
  it("loads a key once for all concurrent callers, then serves it from memory", async () => {
    const keys = new FakeDataKeys([row(1, "active")]);
    const ring = newKeyring(keys, new RootKeys(rootKey), 60_000);
    const got = await Promise.all(Array.from({ length: 10 }, () => ring.active()));
    expect(keys.reads.active).toBe(1);
    expect(new Set(got).size).toBe(1);
    expect(ring.activeNow()).toBe(got[0]);
    // The same cache serves decryption by version.
    expect(await ring.forDecryption(1)).toBe(got[0]);
    expect(keys.reads.byVersion).toBe(0);
  });

  it("reloads after its time to live", async () => {
    const keys = new FakeDataKeys([row(1, "active")]);
    const ring = newKeyring(keys, new RootKeys(rootKey), 0);
    await ring.active();
    expect(ring.activeNow()).toBeUndefined();
    await ring.active();
    expect(keys.reads.active).toBe(2);
  });

  it("on forget, zeroes the keys it dropped only after the callers at hand used them", async () => {
    const keys = new FakeDataKeys([row(1, "active")]);
    const ring = newKeyring(keys, new RootKeys(rootKey), 60_000);
    const k = await ring.active();
    const copy = Buffer.from(k.key);
    ring.forget();
    expect(k.key.equals(copy)).toBe(true);
    expect(ring.activeNow()).toBeUndefined();
    await nextTurn();
    expect(k.key.equals(Buffer.alloc(32))).toBe(true);
    await ring.active();
    expect(keys.reads.active).toBe(2);
  });

  it("a load begun before forget answers its caller but does not refill the cache", async () => {
    const keys = new FakeDataKeys([row(1, "active")]);
    const ring = newKeyring(keys, new RootKeys(rootKey), 60_000);
    keys.hold();
    const loading = ring.active();
    ring.forget();
    keys.release();
    const k = await loading;
    expect(k.version).toBe(1);
    expect(ring.activeNow()).toBeUndefined();
  });

  it("refuses a revoked key for decryption", async () => {
    const keys = new FakeDataKeys([row(1, "revoked"), row(2, "active")]);
    const ring = newKeyring(keys, new RootKeys(rootKey), 60_000);
    const err = await ring.forDecryption(1).catch((e: unknown) => e);
    expect(isKeyRevoked(err)).toBe(true);
  });

  it("reports an altered row as corrupt until it unwraps again", async () => {
    const keys = new FakeDataKeys([row(1, "inactive"), row(2, "active")]);
    const good = keys.rows[0]!.wrapped;
    // One bit flipped (a byte set to a fixed value would be no change one time in 256).
    keys.rows[0]!.wrapped = Buffer.from(good).fill(good[20]! ^ 1, 20, 21);
    const ring = newKeyring(keys, new RootKeys(rootKey), 60_000);
    expect(isDataCorrupt(await ring.forDecryption(1).catch((e: unknown) => e))).toBe(true);
    expect(isDataCorrupt(await ring.checkCorrupt().catch((e: unknown) => e))).toBe(true);
    keys.rows[0]!.wrapped = good;
    await ring.checkCorrupt();
    expect((await ring.forDecryption(1)).version).toBe(1);
  });
});

describe("field cipher", () => {
  it("seals under the active key, counts each use, and opens only in the same field and context", async () => {
    const keys = new FakeDataKeys([row(1, "inactive"), row(2, "active")]);
    const usage = encryptionUsage();
    const cipher = newFieldCipher(
      newKeyring(keys, new RootKeys(rootKey), 60_000),
      indexKeys(),
      pageTokens(randomBytes(32)),
      usage,
    );
    const ctx = new TextEncoder().encode("users:1");
    const sealed = await cipher.encryptField("users.email", Buffer.from("a@example.com"), ctx);
    await cipher.encryptField("users.email", Buffer.from("b@example.com"), ctx);
    expect(sealed.keyVersion).toBe(2);
    const opened = await cipher.decryptField("users.email", sealed.ciphertext, ctx);
    expect(Buffer.from(opened.plaintext).toString()).toBe("a@example.com");
    for (const [field, context] of [
      ["users.phone", ctx],
      ["users.email", new TextEncoder().encode("users:2")],
    ] as const) {
      const err = await cipher.decryptField(field, sealed.ciphertext, context).catch((e) => e);
      expect(isDataCorrupt(err)).toBe(true);
    }
    await usage.flush(keys);
    expect(keys.rows[1]!.encryptionCount).toBe(2n);
  });

  it("once closed, answers KMS_NOT_READY instead of hashing under a zeroed key", () => {
    const keys = new FakeDataKeys([row(1, "active")]);
    const index = indexKeys();
    const cipher = newFieldCipher(
      newKeyring(keys, new RootKeys(rootKey), 60_000),
      index,
      pageTokens(randomBytes(32)),
      encryptionUsage(),
    );
    const before = cipher.hashField("email", "a@example.com");
    expect(cipher.hashField("email", " A@example.com ")).toBe(before);
    index.close();
    expect(() => cipher.hashField("email", "a@example.com")).toThrow(/no usable active key/);
  });
});

/** One index key in slot 0, nothing to reload. */
function indexKeys() {
  return newIndexKeyHolder({ epoch: 1, slot: 0, key: randomBytes(32), next: undefined }, () =>
    Promise.reject(new Error("no reload in this test")),
  );
}

describe("index keys", () => {
  it("hash a value in every slot in use: the current key's, and during a rotation the next key's in the other", async () => {
    const current = randomBytes(32);
    const next = randomBytes(32);
    let stored = { epoch: 1, slot: 0 as const, key: Buffer.from(current), next: undefined };
    const holder = newIndexKeyHolder(stored, async () => stored);
    const [a, none] = holder.slots("email", "A@example.com ");
    expect(none).toBeNull();
    expect(a).toBe(holder.hash("email", "a@example.com", "store"));

    // A rotation begins: the next key fills slot 1, the current key still slot 0.
    stored = { epoch: 2, slot: 0, key: Buffer.from(current), next: Buffer.from(next) } as never;
    await holder.reload();
    expect(holder.epoch()).toBe(2);
    const [a2, b2] = holder.slots("email", "a@example.com");
    expect(a2).toBe(a);
    expect(b2).toMatch(/^[0-9a-f]{64}$/);
    expect(b2).not.toBe(a);
    expect(holder.hash("email", "a@example.com", "store")).toBe(a);

    // The switch: the next key is the key, in slot 1.
    stored = { epoch: 3, slot: 1, key: Buffer.from(next), next: undefined } as never;
    await holder.reload();
    expect(holder.slots("email", "a@example.com")).toEqual([null, b2]);
    expect(holder.hash("email", "a@example.com", "store")).toBe(b2);
    // KmsService's callers hash in their own domain: never a store's index.
    expect(holder.hash("email", "a@example.com", "service")).toMatch(/^[0-9a-f]{64}$/);
    expect(holder.hash("email", "a@example.com", "service")).not.toBe(b2);
    // Past the subkeys kept for callers' field names, answers stay the same.
    const names = Array.from({ length: 300 }, (_, i) => `f${i}`);
    const first = names.map((f) => holder.hash(f, "x", "service"));
    expect(names.map((f) => holder.hash(f, "x", "service"))).toEqual(first);
    expect(new Set(first).size).toBe(300);
    holder.close();
    expect(() => holder.slots("email", "a@example.com")).toThrow(/no usable active key/);
  });
});

describe("index key reloads", () => {
  it("load once more when asked during a load: that load may have read the keys before the change", async () => {
    const key = (epoch: number): IndexKeys => ({
      epoch,
      slot: 0,
      key: randomBytes(32),
      next: undefined,
    });
    let stored = 1;
    const releases: (() => void)[] = [];
    let loads = 0;
    const holder = newIndexKeyHolder(key(1), () => {
      loads++;
      // The keys as they are when the load reads them, answered later.
      const read = stored;
      return new Promise<IndexKeys>((resolve) => releases.push(() => resolve(key(read))));
    });
    const first = holder.reload();
    // A change lands after the first load read, and its news asks for a reload.
    stored = 2;
    const second = holder.reload();
    const third = holder.reload();
    expect(loads).toBe(1);
    releases.shift()!();
    await first;
    expect(holder.epoch()).toBe(1);
    await new Promise((r) => setImmediate(r));
    expect(loads).toBe(2);
    releases.shift()!();
    await Promise.all([second, third]);
    expect(holder.epoch()).toBe(2);
    expect(loads).toBe(2);
    holder.close();
  });
});
