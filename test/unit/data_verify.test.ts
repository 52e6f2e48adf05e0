import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  verifySealedData,
  type IndexKeysInUse,
  type RowToVerify,
  type SealedReader,
} from "../../internal/biz/data_verify.js";
import type { Slot } from "../../internal/biz/kms/index_keys.js";
import { PII_FIELDS, USER_LAYOUT, type PiiField } from "../../internal/biz/user.js";
import { sealUserField } from "../../internal/biz/user_fields.js";
import { FakeDataKeys } from "./fakes/data_keys.js";
import { fakeIndexKeys, realFieldCipher, type FakeIndexKeys } from "./fakes/field_cipher.js";
import { withActiveKey } from "./fakes/key_rows.js";

// The check behind `migrate verify --data`, over rows in memory and the real
// field cipher: what counts as ok, failed, pending (a rotation's new column
// not yet backfilled) and stale (a rotation's old column not yet cleared),
// batch by batch.

function newTest() {
  const keys = withActiveKey(new FakeDataKeys());
  const index = fakeIndexKeys();
  const cipher = realFieldCipher(keys, index);
  const rows: RowToVerify[] = [];
  let reads = 0;
  const reader: SealedReader = {
    layout: USER_LAYOUT,
    table: "users",
    sealedColumn: (f) => `${f}_encrypted`,
    indexColumn: (f, slot) => (slot === 0 ? `${f}_hash` : `${f}_hash_b`),
    async batch(afterId, limit) {
      reads++;
      const k = index.current;
      const inUse: IndexKeysInUse = { epoch: k.epoch, slot: k.slot, rotating: !!k.next };
      return { keys: inUse, rows: rows.filter((r) => r.id > afterId).slice(0, limit) };
    },
    count: async (afterId) => rows.filter((r) => r.id > afterId).length,
  };
  /** A row as the service writes it, under the keys in use now. */
  const add = async (id: number, values: Partial<Record<PiiField, string>>) => {
    const row: RowToVerify = { id, indexEpoch: index.current.epoch, fields: {} };
    for (const f of PII_FIELDS) {
      const v = values[f];
      if (v === undefined) continue;
      const s = await sealUserField(cipher, id, f, v);
      row.fields[f] = { ciphertext: s.ciphertext, keyVersion: s.keyVersion, hashes: s.hashes };
    }
    rows.push(row);
    return row;
  };
  return { cipher, index, rows, reader, add, reads: () => reads };
}

/** A rotation begun on `index`: a new key fills the other slot (as the repository's begin). */
function beginRotation(index: FakeIndexKeys) {
  const k = index.current;
  index.current = { ...k, epoch: k.epoch + 1, next: randomBytes(32) };
}

describe("verifySealedData", () => {
  it("When every value opens and every index matches, Then all count ok, by column and key version, in batches", async () => {
    const t = newTest();
    for (let id = 1; id <= 5; id++)
      await t.add(id, { email: `p${id}@example.com`, name: `P ${id}` });
    const batches: number[] = [];
    const v = await verifySealedData(t.reader, t.cipher, {
      fromId: 0,
      batchSize: 2,
      onBatch: (p) => batches.push(p.lastId),
    });
    expect(v).toMatchObject({ ok: true, complete: true, rows: 5, lastId: 5, failuresTotal: 0 });
    expect(batches).toEqual([2, 4, 5]);
    expect(v.sealed).toEqual([
      { table: "users", column: "email_encrypted", keyVersion: 1, ok: 5, failed: 0 },
      { table: "users", column: "name_encrypted", keyVersion: 1, ok: 5, failed: 0 },
    ]);
    expect(v.indexes.map((c) => [c.column, c.ok, c.failed])).toEqual([
      ["email_hash", 5, 0],
      ["name_hash", 5, 0],
    ]);
  });

  it("When a value belongs to another row, its version column lies, or an index is wrong, Then each is a failure naming the row and column", async () => {
    const t = newTest();
    const a = await t.add(1, { email: "a@example.com" });
    const b = await t.add(2, { email: "b@example.com" });
    const c = await t.add(3, { email: "c@example.com", phone: "+15550001" });
    const d = await t.add(4, { name: "Dee" });
    a.fields.email!.ciphertext = b.fields.email!.ciphertext;
    c.fields.phone!.hashes = ["0".repeat(64), null];
    d.fields.name!.keyVersion = 7;
    b.fields.email!.hashes = [null, null];
    const v = await verifySealedData(t.reader, t.cipher, { fromId: 0, batchSize: 10 });
    expect(v.ok).toBe(false);
    expect(v.failures.map((f) => [f.id, f.column, f.problem])).toEqual([
      [1, "email_encrypted", expect.stringMatching(/does not open under its row's context/)],
      [2, "email_hash", "the index is missing"],
      [3, "phone_hash", "the index does not match its value"],
      [4, "name_encrypted", "its key version column says 7, the ciphertext 1"],
    ]);
    expect(v.indexes.find((x) => x.column === "email_hash")).toMatchObject({
      ok: 1,
      failed: 1,
      unchecked: 1,
    });
    const plaintexts = ["a@example.com", "b@example.com", "c@example.com", "+15550001", "Dee"];
    for (const p of plaintexts) expect(JSON.stringify(v)).not.toContain(p);
  });

  it("When a rotation's backfill has not reached a row, Then its empty new column is pending, not failed; once switched, the old column is stale", async () => {
    const t = newTest();
    await t.add(1, { email: "old@example.com" });
    beginRotation(t.index);
    // The service's writes from then on fill both columns.
    await t.cipher.reloadIndexKeys();
    await t.add(2, { email: "new@example.com" });
    const during = await verifySealedData(t.reader, t.cipher, { fromId: 0, batchSize: 10 });
    expect(during.ok).toBe(true);
    const slotB = during.indexes.filter((c) => c.column === "email_hash_b");
    expect(slotB.reduce((s, c) => s + c.pending, 0)).toBe(1);
    expect(slotB.reduce((s, c) => s + c.ok, 0)).toBe(1);

    // The switch: the new key alone, in slot 1; the old column still filled.
    const k = t.index.current;
    t.index.current = { epoch: k.epoch + 1, slot: 1 as Slot, key: k.next!, next: undefined };
    const after = await verifySealedData(t.reader, t.cipher, { fromId: 0, batchSize: 10 });
    // Row 1's new column is empty although no rotation is under way: missing.
    expect(after.failures.map((f) => [f.id, f.column, f.problem])).toEqual([
      [1, "email_hash_b", "the index is missing"],
    ]);
    expect(after.indexes.filter((c) => c.column === "email_hash").map((c) => c.stale)).toEqual([
      1, 1,
    ]);
  });

  it("When the index keys change between batches, Then the cipher reloads them and the rows are read again under them", async () => {
    const t = newTest();
    await t.add(1, { email: "x@example.com" });
    beginRotation(t.index);
    const loads = t.index.loads;
    const v = await verifySealedData(t.reader, t.cipher, { fromId: 0, batchSize: 10 });
    expect(v.ok).toBe(true);
    expect(t.index.loads).toBe(loads + 1);
  });

  it("When stopped, Then it ends after the batch in hand, incomplete, with the id to resume after", async () => {
    const t = newTest();
    for (let id = 1; id <= 6; id++) await t.add(id, { email: `s${id}@example.com` });
    const stop = new AbortController();
    const v = await verifySealedData(t.reader, t.cipher, {
      fromId: 0,
      batchSize: 2,
      signal: stop.signal,
      onBatch: () => stop.abort(),
    });
    expect(v).toMatchObject({ complete: false, rows: 2, lastId: 2, ok: true });
    const rest = await verifySealedData(t.reader, t.cipher, { fromId: v.lastId, batchSize: 2 });
    expect(rest).toMatchObject({ complete: true, rows: 4, fromId: 2, lastId: 6 });
  });
});
