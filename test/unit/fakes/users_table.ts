import type { SlotHashes } from "../../../internal/biz/kms/index_keys.js";
import { RevokedKeyWriteError, StaleIndexWriteError } from "../../../internal/biz/sealed_store.js";
import { DuplicateError, type PiiField } from "../../../internal/biz/user.js";
import type { DataKey } from "../../../internal/biz/kms/data_keys.js";
import { revokedVersions } from "./key_rows.js";
import type { FakeIndexKeys } from "./field_cipher.js";

/** A users row in memory: what the table's columns hold. */
export interface UserRow {
  id: number;
  username: string;
  passwordHash: string;
  fields: Partial<Record<PiiField, { ciphertext: Buffer; keyVersion: number; hashes: SlotHashes }>>;
  indexEpoch: number;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * The users table in memory, shared by the fakes of the ports over it
 * (user_repo.ts, sealed_store.ts), with the rules the database keeps: unique
 * usernames and unique email and phone indexes in each column; no value
 * under a revoked key (KR001); indexes only under the index keys in use, in
 * their columns (KR003).
 */
export function fakeUsersTable(keys: { rows: DataKey[] }, index: FakeIndexKeys) {
  const rows = new Map<number, UserRow>();
  let lastId = 0;
  return {
    rows,
    index,
    nextId: () => ++lastId,
    /** Rows by ascending id. */
    sorted: () => [...rows.values()].sort((a, b) => a.id - b.id),
    /** Throws what the database would for writing `row` (its `changed` fields written). */
    check(row: UserRow, changed: readonly PiiField[]) {
      const revoked = revokedVersions(keys);
      for (const f of changed) {
        const v = row.fields[f];
        if (v && revoked.has(v.keyVersion)) throw new RevokedKeyWriteError();
      }
      const { epoch, slot, next } = index.current;
      for (const f of changed) {
        const h = row.fields[f]?.hashes;
        if (!h || (h[0] === null && h[1] === null)) continue;
        const stale =
          row.indexEpoch !== epoch ||
          (h[0] !== null) !== (slot === 0 || next !== undefined) ||
          (h[1] !== null) !== (slot === 1 || next !== undefined);
        if (stale) throw new StaleIndexWriteError();
      }
      for (const other of rows.values()) {
        if (other.id === row.id) continue;
        if (other.username.toLowerCase() === row.username.toLowerCase())
          throw new DuplicateError("username");
      }
      const taken = duplicateIndex(rows, row);
      if (taken) throw new DuplicateError(taken);
    },
  };
}

/** The unique field (email, phone) whose index `row` shares with another row in the same column. */
export function duplicateIndex(
  rows: Map<number, UserRow>,
  row: UserRow,
): "email" | "phone" | undefined {
  for (const other of rows.values()) {
    if (other.id === row.id) continue;
    for (const f of ["email", "phone"] as const) {
      for (const slot of [0, 1] as const) {
        const mine = row.fields[f]?.hashes[slot];
        if (mine != null && other.fields[f]?.hashes[slot] === mine) return f;
      }
    }
  }
  return undefined;
}

export type FakeUsersTable = ReturnType<typeof fakeUsersTable>;
