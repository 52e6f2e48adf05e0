import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BizError, reasonName } from "../../internal/biz/errors.js";
import { AuditChain } from "../../internal/biz/kms/audit_chain.js";
import { bootstrap } from "../../internal/biz/kms/bootstrap.js";
import { keyMint } from "../../internal/biz/kms/key_mint.js";
import { KeyQueries } from "../../internal/biz/kms/key_queries.js";
import { newKeyring } from "../../internal/biz/kms/keyring.js";
import { RootKeyRotation } from "../../internal/biz/kms/root_key_rotation.js";
import { RootKeys } from "../../internal/biz/kms/root_keys.js";
import { pageTokens } from "../../internal/biz/paging.js";
import { rootKeyId } from "../../internal/pkg/kms/rootkey.js";
import { dataKeyLabel, unwrapKey } from "../../internal/pkg/kms/wrap.js";
import { FakeDataKeys } from "./fakes/data_keys.js";
import { dataKeyRow, silentLog, TEST_POLICY } from "./fakes/keys.js";
import { FakeStoredKeys } from "./fakes/stored_keys.js";

// Start-up, root-key rotation and the key queries over in-memory keys.

const POLICY = TEST_POLICY;
const silent = silentLog;
const tomorrow = () => new Date(Date.now() + 86_400_000);
const yesterday = () => new Date(Date.now() - 86_400_000);

/** One instance's view of a shared database (`keys`, `stored`): its own keyring and chain. */
function instance(keys: FakeDataKeys, stored: FakeStoredKeys, roots: RootKeys) {
  const keyring = newKeyring(keys, roots, 60_000);
  const audit = new AuditChain();
  const start = () =>
    bootstrap({
      stored,
      keys,
      keyring,
      roots,
      mint: keyMint(roots, POLICY),
      audit,
      log: silent,
    });
  return { keyring, audit, start };
}

function database() {
  const keys = new FakeDataKeys();
  return { keys, stored: new FakeStoredKeys(keys) };
}

async function failure(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (err instanceof BizError) return `${err.code} ${reasonName(err.reason).reason}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  throw new Error(`expected a failure, got ${String(err)}`);
}

describe("bootstrap", () => {
  it("When the database is fresh, Then the index, audit and first data keys are made under the configured root key, which is recorded", async () => {
    const { keys, stored } = database();
    const rootKey = randomBytes(32);
    const sut = instance(keys, stored, new RootKeys(rootKey));

    const started = await sut.start();

    expect(stored.root).toBe(rootKeyId(rootKey));
    expect(stored.index).toBeDefined();
    expect(stored.audit).toBeDefined();
    expect(keys.rows.map((k) => [k.version, k.status])).toEqual([[1, "active"]]);
    expect(keys.changes).toMatchObject([
      { kind: "key_generated", details: { reason: "initial key" } },
    ]);
    expect(started.index).toMatchObject({ epoch: 1, slot: 0, next: undefined });
    // The audit key is loaded: events can be sealed.
    expect(sut.audit.checkpoint({ seq: 0, hash: Buffer.alloc(32) }, new Date()).mac).toHaveLength(
      32,
    );
    expect((await sut.keyring.active()).version).toBe(1);
    started.pageTokens.destroy();
  });

  it("When a second instance starts on the same database, Then it makes nothing and uses the same keys", async () => {
    const { keys, stored } = database();
    const rootKey = randomBytes(32);
    const first = await instance(keys, stored, new RootKeys(rootKey)).start();
    const index = stored.index;

    const second = await instance(keys, stored, new RootKeys(Buffer.from(rootKey))).start();

    expect(stored.index).toBe(index);
    expect(keys.rows).toHaveLength(1);
    expect(second.index.key.equals(first.index.key)).toBe(true);
    // Every instance reads the others' page tokens.
    expect(second.pageTokens.read(first.pageTokens.write(3, "q"), "q")).toBe(3);
  });

  it("When the stored keys are under another root key, Then start-up is refused and nothing is made", async () => {
    const { keys, stored } = database();
    await instance(keys, stored, new RootKeys(randomBytes(32))).start();

    const refused = await failure(instance(keys, stored, new RootKeys(randomBytes(32))).start());

    expect(refused).toMatch(
      /^KmsInitError: the root key is not the one the stored keys are wrapped under/,
    );
    expect(keys.rows).toHaveLength(1);
  });

  it("When a database from before kms_root_key is under another key, Then its index key does not unwrap and start-up is refused", async () => {
    const { keys, stored } = database();
    await instance(keys, stored, new RootKeys(randomBytes(32))).start();
    stored.root = undefined;

    const refused = await failure(instance(keys, stored, new RootKeys(randomBytes(32))).start());

    expect(refused).toBe(
      "KmsInitError: the root key does not unwrap the stored index key: wrong root key (refusing to start)",
    );
    expect(stored.root).toBeUndefined();
  });

  it("When the keys are still under a previous key whose window has ended, Then start-up says to extend it and rotate", async () => {
    const { keys, stored } = database();
    const old = randomBytes(32);
    await instance(keys, stored, new RootKeys(old)).start();
    const roots = new RootKeys(randomBytes(32), { key: Buffer.from(old), until: yesterday() });

    const refused = await failure(instance(keys, stored, roots).start());

    expect(refused).toMatch(/extend kms.previous_root_key.until and rotate the root key/);
  });

  it("When the keys are under the configured key and a previous one is configured too, Then the previous one is dropped", async () => {
    const { keys, stored } = database();
    const current = randomBytes(32);
    await instance(keys, stored, new RootKeys(current)).start();
    const roots = new RootKeys(Buffer.from(current), { key: randomBytes(32), until: tomorrow() });

    await instance(keys, stored, roots).start();

    expect(roots.previousId).toBeUndefined();
  });
});

describe("RootKeyRotation", () => {
  async function underPrevious() {
    const { keys, stored } = database();
    const old = randomBytes(32);
    await instance(keys, stored, new RootKeys(old)).start();
    const current = randomBytes(32);
    const roots = new RootKeys(current, { key: Buffer.from(old), until: tomorrow() });
    const { keyring, start } = instance(keys, stored, roots);
    await start();
    const sut = new RootKeyRotation(stored, keyring, roots, silent);
    return { sut, keys, stored, keyring, roots, old, current };
  }

  it("When the database is under the previous key, Then every stored key is re-wrapped under the configured one, once recorded, and the previous key dropped", async () => {
    const { sut, keys, stored, keyring, roots, old, current } = await underPrevious();
    await keyring.active();

    const rotated = await sut.rotate();

    expect(rotated).toEqual({
      rotated: true,
      rewrapped: 3,
      rootKeyId: rootKeyId(current),
      previousRootKeyId: rootKeyId(old),
    });
    expect(stored.root).toBe(rootKeyId(current));
    expect(stored.changes).toMatchObject([
      { kind: "root_key_rotated", details: { rewrapped_keys: "3" } },
    ]);
    const label = dataKeyLabel(1, "AES-256-GCM");
    expect(unwrapKey(current, keys.row(1).wrapped, label)).toHaveLength(32);
    expect(keyring.activeNow()).toBeUndefined();
    expect(roots.previousId).toBeUndefined();
  });

  it("When asked again once the previous key is gone, Then there is nothing to do", async () => {
    const { sut, stored, current } = await underPrevious();
    await sut.rotate();

    expect(await sut.rotate()).toEqual({
      rotated: false,
      rewrapped: 0,
      rootKeyId: rootKeyId(current),
      previousRootKeyId: "",
    });
    expect(stored.changes).toHaveLength(1);
  });

  it("When a stored key was altered, Then DATA_LOSS DATA_KEY_CORRUPT and nothing is re-wrapped", async () => {
    const { sut, keys, stored, old } = await underPrevious();
    const wrapped = keys.row(1).wrapped;
    // One bit flipped (a byte set to a fixed value would be no change one time in 256).
    keys.row(1).wrapped = Buffer.from(wrapped).fill(wrapped[20]! ^ 1, 20, 21);

    expect(await failure(sut.rotate())).toBe("DATA_LOSS DATA_KEY_CORRUPT");
    expect(stored.root).toBe(rootKeyId(old));
    expect(stored.changes).toEqual([]);
  });

  it("When this instance has no previous key and the database is under another, Then ROOT_KEY_MISMATCH", async () => {
    const { keys, stored } = database();
    await instance(keys, stored, new RootKeys(randomBytes(32))).start();
    const roots = new RootKeys(randomBytes(32));
    const sut = new RootKeyRotation(stored, newKeyring(keys, roots, 60_000), roots, silent);

    expect(await failure(sut.rotate())).toBe("FAILED_PRECONDITION ROOT_KEY_MISMATCH");
  });
});

describe("KeyQueries", () => {
  const rootKey = randomBytes(32);
  const keys = () =>
    new FakeDataKeys([
      dataKeyRow(rootKey, 1, "expired"),
      dataKeyRow(rootKey, 2, "inactive"),
      dataKeyRow(rootKey, 3, "revoked"),
      dataKeyRow(rootKey, 4, "inactive"),
      dataKeyRow(rootKey, 5, "active"),
    ]);
  const store = (counts: [number, bigint][]) => ({
    countByKeyVersion: async () => new Map(counts),
  });
  const newTestQueries = (stores = [store([])]) => {
    const stored = new FakeStoredKeys();
    stored.root = "root-1";
    return new KeyQueries(keys(), stored, stores, {
      algorithm: "AES-256-GCM",
      rotateIntervalMs: POLICY.rotateIntervalMs,
    });
  };

  it("When stores hold values, Then the status sums them per version and lists the inactive and expired keys none uses", async () => {
    const sut = newTestQueries([
      store([
        [2, 3n],
        [5, 1n],
      ]),
      store([[5, 2n]]),
    ]);

    const status = await sut.status();

    expect(status.active?.version).toBe(5);
    expect([...status.usage].sort()).toEqual([
      [2, 3n],
      [5, 3n],
    ]);
    expect(status.unreferenced).toEqual([1, 4]);
    expect(status.rootKeyId).toBe("root-1");
  });

  it("When listing a page at a time, Then versions come newest first, and a token from another filter is refused", async () => {
    const sut = newTestQueries();
    const tokens = pageTokens(randomBytes(32));

    const first = await sut.listKeys({ pageSize: 2, pageToken: "" }, tokens);
    const second = await sut.listKeys({ pageSize: 2, pageToken: first.nextPageToken }, tokens);

    expect(first.keys.map((k) => k.version)).toEqual([5, 4]);
    expect(second.keys.map((k) => k.version)).toEqual([3, 2]);
    expect(
      await failure(
        sut.listKeys({ pageSize: 2, pageToken: first.nextPageToken, status: "inactive" }, tokens),
      ),
    ).toBe("INVALID_ARGUMENT INVALID_PAGE_TOKEN");
  });

  it("When no key has the version, Then NOT_FOUND KEY_NOT_FOUND", async () => {
    expect(await failure(newTestQueries().getKey(9))).toBe("NOT_FOUND KEY_NOT_FOUND");
  });
});
