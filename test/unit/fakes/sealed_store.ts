import type { Slot } from "../../../internal/biz/kms/index_keys.js";
import {
  IndexCollisionError,
  otherSlot,
  RevokedKeyWriteError,
  type RowToIndex,
  type RowToMove,
  type SealedWrites,
} from "../../../internal/biz/sealed_store.js";
import { PII_FIELDS, USER_LAYOUT } from "../../../internal/biz/user.js";
import type { DataKey } from "../../../internal/biz/kms/data_keys.js";
import { revokedVersions } from "./key_rows.js";
import { duplicateIndex, type FakeUsersTable, type UserRow } from "./users_table.js";

/**
 * biz.SealedWrites over the in-memory users table, as data's user_store:
 * each write checked whole before any row changes (a transaction's
 * all-or-nothing).
 */
export function fakeSealedStore(table: FakeUsersTable, keys: { rows: DataKey[] }): SealedWrites {
  const under = (versions: number[], afterId: number) =>
    table
      .sorted()
      .filter(
        (r) =>
          r.id > afterId && PII_FIELDS.some((f) => versions.includes(r.fields[f]?.keyVersion ?? 0)),
      );
  const lacking = (from: Slot, afterId: number) =>
    table
      .sorted()
      .filter(
        (r) =>
          r.id > afterId &&
          PII_FIELDS.some(
            (f) =>
              r.fields[f]?.hashes[from] != null && r.fields[f]?.hashes[otherSlot(from)] == null,
          ),
      );
  const holding = (slot: Slot, afterId: number) =>
    table
      .sorted()
      .filter((r) => r.id > afterId && PII_FIELDS.some((f) => r.fields[f]?.hashes[slot] != null));
  const copy = (r: UserRow): UserRow => ({ ...r, fields: { ...r.fields } });
  return {
    layout: USER_LAYOUT,
    async countByKeyVersion() {
      const counts = new Map<number, bigint>();
      for (const r of table.rows.values())
        for (const v of new Set(Object.values(r.fields).map((f) => f.keyVersion)))
          counts.set(v, (counts.get(v) ?? 0n) + 1n);
      return counts;
    },
    rowsUnder: async (versions, afterId, limit) =>
      under(versions, afterId)
        .slice(0, limit)
        .map((r) => {
          const fields: RowToMove["fields"] = {};
          for (const f of PII_FIELDS) {
            const v = r.fields[f];
            if (v) fields[f] = { ciphertext: v.ciphertext, keyVersion: v.keyVersion };
          }
          return { id: r.id, fields };
        }),
    countUnder: async (versions, afterId) => BigInt(under(versions, afterId).length),
    unindexed: async (from, afterId, limit) =>
      lacking(from, afterId)
        .slice(0, limit)
        .map((r) => {
          const fields: RowToIndex["fields"] = {};
          for (const f of PII_FIELDS) {
            const v = r.fields[f];
            const oldHash = v?.hashes[from];
            if (v && oldHash && v.hashes[otherSlot(from)] === null)
              fields[f] = { ciphertext: v.ciphertext, oldHash };
          }
          return { id: r.id, fields };
        }),
    countUnindexed: async (from, afterId) => BigInt(lacking(from, afterId).length),
    countIndexed: async (slot, afterId) => BigInt(holding(slot, afterId).length),

    async move(moves) {
      const revoked = revokedVersions(keys);
      const changed: UserRow[] = [];
      for (const m of moves) {
        const row = table.rows.get(m.id);
        if (!row) continue;
        const next = copy(row);
        let moved = false;
        for (const f of PII_FIELDS) {
          const mv = m.fields[f];
          const now = row.fields[f];
          // Compare-and-set, and never from a version revoked by now.
          if (!mv || !now || !now.ciphertext.equals(mv.old) || revoked.has(now.keyVersion))
            continue;
          next.fields[f] = { ...now, ciphertext: mv.ciphertext, keyVersion: mv.keyVersion };
          moved = true;
        }
        if (!moved) continue;
        // The trigger of migration 000008: no value under a revoked key.
        if (PII_FIELDS.some((f) => revoked.has(next.fields[f]?.keyVersion ?? 0)))
          throw new RevokedKeyWriteError();
        changed.push(next);
      }
      for (const r of changed) table.rows.set(r.id, r);
      return changed.length;
    },

    async fill(to, epoch, fills) {
      const from = otherSlot(to);
      const changed: UserRow[] = [];
      for (const x of fills) {
        const row = table.rows.get(x.id);
        if (!row) continue;
        const next = copy(row);
        let filled = false;
        for (const f of PII_FIELDS) {
          const fl = x.fields[f];
          const now = row.fields[f];
          if (!fl || !now || now.hashes[from] !== fl.oldHash || now.hashes[to] !== null) continue;
          const hashes: [string | null, string | null] = [...now.hashes];
          hashes[to] = fl.hash;
          next.fields[f] = { ...now, hashes };
          filled = true;
        }
        if (!filled) continue;
        next.indexEpoch = epoch;
        changed.push(next);
      }
      const after = new Map(table.rows);
      for (const r of changed) after.set(r.id, r);
      if (changed.some((r) => duplicateIndex(after, r))) throw new IndexCollisionError();
      for (const r of changed) table.rows.set(r.id, r);
      return changed.length;
    },

    async clear(from, epoch, afterId, limit) {
      const batch = holding(from, afterId).slice(0, limit);
      for (const r of batch) {
        const next = copy(r);
        for (const f of PII_FIELDS) {
          const v = next.fields[f];
          if (!v) continue;
          const hashes: [string | null, string | null] = [...v.hashes];
          hashes[from] = null;
          next.fields[f] = { ...v, hashes };
        }
        next.indexEpoch = epoch;
        table.rows.set(r.id, next);
      }
      return batch.map((r) => r.id);
    },

    missingIndexes: async () => [],
  };
}
