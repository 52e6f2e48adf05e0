import type { FieldCipher } from "./kms/field_cipher.js";
import type { SlotHashes } from "./kms/index_keys.js";
import {
  KEY_CHANGE_ATTEMPTS,
  openText,
  RevokedKeyWriteError,
  StaleIndexWriteError,
} from "./sealed_store.js";
import {
  PII_FIELDS,
  USER_LAYOUT,
  userErrors,
  type IndexedRead,
  type PiiField,
  type StoredField,
  type StoredUser,
} from "./user.js";

// A user's fields under the keys in use: sealed with their blind indexes,
// opened, and written or read again when the keys changed under a call.

const encoder = new TextEncoder();

/** `value` sealed for user `id`'s `field`, with its blind index under each index key in use. */
export async function sealUserField(
  kms: FieldCipher,
  id: number,
  field: PiiField,
  value: string,
): Promise<StoredField> {
  const sealed = await kms.encryptField(
    USER_LAYOUT.fieldName(field),
    encoder.encode(value),
    USER_LAYOUT.rowContext(id),
  );
  const { epoch, hashes } = kms.indexes(field, value);
  return {
    ciphertext: sealed.ciphertext,
    keyVersion: sealed.keyVersion,
    hashes,
    indexEpoch: epoch,
  };
}

/**
 * A stored user's values ("" where none); a field that cannot be read
 * fails the read of this user only (KEY_REVOKED, USER_DATA_CORRUPT).
 */
export async function openUserFields(
  kms: FieldCipher,
  stored: StoredUser,
): Promise<Record<PiiField, string>> {
  const values: Record<PiiField, string> = { email: "", phone: "", name: "" };
  for (const f of PII_FIELDS) {
    const sealed = stored.fields[f];
    if (!sealed) continue;
    const opened = await openText(kms, USER_LAYOUT, stored.id, f, sealed.ciphertext);
    if ("failure" in opened) {
      throw opened.failure === "revoked"
        ? userErrors.keyRevoked(stored.id, f)
        : userErrors.corrupt(stored.id, f);
    }
    values[f] = opened.value;
  }
  return values;
}

/**
 * Runs `write` (which seals anew each time) until the database takes it.
 * The database refuses a value sealed under a key revoked since this
 * instance cached it (migration 000008), and blind indexes made under index
 * keys no longer in use (000018): reload the keys and seal again. Revoking
 * the active key rotates first, so a reload finds a usable one.
 */
export async function underActiveKey<T>(kms: FieldCipher, write: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (attempt === KEY_CHANGE_ATTEMPTS) throw err;
      if (err instanceof RevokedKeyWriteError) kms.reloadKeys();
      else if (err instanceof StaleIndexWriteError) await kms.reloadIndexKeys();
      else throw err;
    }
  }
}

/**
 * A read by blind index made under index keys other than the database's (a
 * rotation this instance has not heard of yet) is asked again under the
 * keys in use: a lookup finds the same user before, during and after.
 */
export async function underIndexKeys<T>(
  kms: FieldCipher,
  hashes: (() => SlotHashes) | undefined,
  read: (hashes: SlotHashes | undefined) => Promise<IndexedRead<T>>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const epoch = kms.indexEpoch();
    const result = await read(hashes?.());
    if (result.epoch === undefined || result.epoch === epoch || attempt === KEY_CHANGE_ATTEMPTS)
      return result.found;
    await kms.reloadIndexKeys();
  }
}
