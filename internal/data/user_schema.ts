import type { Slot } from "../biz/kms/index_keys.js";
import { DuplicateError, PII_FIELDS, type PiiField } from "../biz/user.js";
import { RevokedKeyWriteError, StaleIndexWriteError } from "../biz/sealed_store.js";

// What the users' repositories (user_repo.ts, user_store.ts) know of the
// table beyond its column names: the index columns per slot, the indexes on
// them, and the refusals its triggers raise.

/** A field's index column in `slot` (biz.Slot; the second column came with migration 000014). */
export const indexColumn = (field: PiiField, slot: Slot) =>
  slot === 0 ? `${field}_hash` : `${field}_hash_b`;

/** A field's index columns, by slot. */
export const indexColumns = (field: PiiField) =>
  [indexColumn(field, 0), indexColumn(field, 1)] as const;

/** The index on each index column (migrations 000001, 05, 06, 15–17), by field and slot. */
const HASH_INDEXES: Record<PiiField, readonly [string, string]> = {
  email: ["idx_users_email_hash_unique", "idx_users_email_hash_b_unique"],
  phone: ["idx_users_phone_hash_unique", "idx_users_phone_hash_b_unique"],
  name: ["idx_users_name_hash", "idx_users_name_hash_b"],
};

/** The indexes a rotation of the index key relies on: uniqueness, and the name lookup, in both slots. */
export const ROTATION_INDEXES = ([0, 1] as const).flatMap((slot) =>
  PII_FIELDS.map((f) => HASH_INDEXES[f][slot]),
);

/** The unique indexes, by the field a violation of each names. */
const UNIQUE: Record<string, DuplicateError["field"]> = {
  users_username_key: "username",
  idx_users_username_lower_unique: "username",
  ...Object.fromEntries(
    (["email", "phone"] as const).flatMap((f) => HASH_INDEXES[f].map((name) => [name, f])),
  ),
};

/**
 * The write refusals biz acts on, as its errors: a unique value taken (the
 * field named, never the value), a ciphertext under a revoked key
 * (migration 000008's trigger, SQLSTATE KR001), and blind indexes under
 * index keys no longer in use (000018's, KR003). Anything else as it came.
 */
export function writeRefusal(err: unknown): unknown {
  const e = err as { code?: string; constraint?: string };
  if (e.code === "23505" && e.constraint && UNIQUE[e.constraint])
    return new DuplicateError(UNIQUE[e.constraint]!);
  if (e.code === "KR001") return new RevokedKeyWriteError();
  if (e.code === "KR003") return new StaleIndexWriteError();
  return err;
}

/**
 * The SET clause that gathers a row's key versions from an expression per
 * field (in SET, a column names the row's value before the update).
 */
export const keyVersionsSet = (perField: string[]) =>
  `key_versions = array_remove(ARRAY[${perField.join(", ")}], NULL)`;
