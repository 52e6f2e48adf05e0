import type { FieldCrypto, Sealed } from "./kms/field_cipher.js";
import type { Slot } from "./kms/index_keys.js";
import type { ProtectedValues } from "./kms/data_keys.js";
import { isDataCorrupt, isKeyRevoked } from "./kms/errors.js";

// A store of sealed values (the users table today) as the background jobs
// see it: the re-encryption moves its values to the active data key, the
// index-key rotation fills and clears its blind indexes. Each store is
// implemented once in internal/data; the jobs know no table.

/**
 * How many times a write refused because keys changed under it (a revoked
 * data key, index keys no longer in use) is sealed again: a few tries cover
 * changes landing in a row.
 */
export const KEY_CHANGE_ATTEMPTS = 3;

/** The slot a rotation fills when the current key is in `slot`, and the other way round. */
export const otherSlot = (slot: Slot): Slot => (slot === 0 ? 1 : 0);

/** What binds a store's ciphertexts to where they live (their associated data). */
export interface SealedLayout {
  /** The fields holding sealed values, each with a blind index under the same name. */
  readonly fields: readonly string[];
  /** The field name a value is sealed under. */
  fieldName(field: string): string;
  /** The context a row's values are sealed under. */
  rowContext(id: number): Uint8Array;
  /** What one row is, in messages ("user 7 email: ..."). */
  readonly noun: string;
}

/** A row's values under the versions that move, as read. */
export interface RowToMove {
  id: number;
  fields: Partial<Record<string, { ciphertext: Buffer; keyVersion: number }>>;
}

/** New ciphertexts for a row, each replacing `old` only if the row still holds it. */
export interface RowMove {
  id: number;
  fields: Partial<Record<string, { old: Buffer; ciphertext: Buffer; keyVersion: number }>>;
}

/** A row's values lacking an index in the new slot, each with its index in the old one. */
export interface RowToIndex {
  id: number;
  fields: Partial<Record<string, { ciphertext: Buffer; oldHash: string }>>;
}

/** New-slot indexes for a row, each written only where the row still holds `oldHash`. */
export interface IndexFill {
  id: number;
  fields: Partial<Record<string, { oldHash: string; hash: string }>>;
}

/** The reads the background jobs make of a store; counts by key version for the KMS. */
export interface SealedStore extends ProtectedValues {
  readonly layout: SealedLayout;
  /** Rows after `afterId` holding a value under one of `versions`, by ascending id. */
  rowsUnder(versions: number[], afterId: number, limit: number): Promise<RowToMove[]>;
  countUnder(versions: number[], afterId: number): Promise<bigint>;
  /** Rows after `afterId` with an index in `fromSlot` and none in the other, by ascending id. */
  unindexed(fromSlot: Slot, afterId: number, limit: number): Promise<RowToIndex[]>;
  countUnindexed(fromSlot: Slot, afterId: number): Promise<bigint>;
  /** Rows after `afterId` with an index in `slot`. */
  countIndexed(slot: Slot, afterId: number): Promise<bigint>;
}

/**
 * A store inside a job's transaction: the job's repository writes a batch
 * and moves the job's cursor in one commit. Every write is a compare-and-set
 * per field: a value a user changed since the job read it keeps the user's
 * write, and the row's other fields still go ahead.
 */
export interface SealedWrites extends SealedStore {
  /**
   * Replaces each value still as read, unless its key was revoked since;
   * the rows changed. RevokedKeyWriteError when a new value names a revoked key.
   */
  move(moves: RowMove[]): Promise<number>;
  /**
   * Writes each index into `toSlot` where the row still holds the old one and
   * none in `toSlot`, recording `epoch`; the rows changed.
   * IndexCollisionError when a filled index is another row's.
   */
  fill(toSlot: Slot, epoch: number, fills: IndexFill[]): Promise<number>;
  /** Empties `fromSlot` of the next `limit` rows after `afterId` that hold one; their ids. */
  clear(fromSlot: Slot, epoch: number, afterId: number, limit: number): Promise<number[]>;
  /** The indexes a rotation relies on that are missing or unusable (INVALID), by name. */
  missingIndexes(): Promise<string[]>;
}

/**
 * The database refused a write whose ciphertext names a revoked data key (a
 * key cache that had not heard of the revocation yet): re-encrypt and retry.
 */
export class RevokedKeyWriteError extends Error {
  constructor() {
    super("a written value names a revoked data key");
  }
}

/**
 * The database refused a write whose blind indexes were computed under index
 * keys no longer in use (a rotation began or switched since this instance
 * loaded them): reload the index keys and write again.
 */
export class StaleIndexWriteError extends Error {
  constructor() {
    super("a written blind index was made under index keys no longer in use");
  }
}

/**
 * Thrown by fill: a filled index is another row's under the new key (values
 * alike under it but not under the old, written outside the service).
 */
export class IndexCollisionError extends Error {
  override readonly name = "IndexCollisionError";
  constructor() {
    super("two rows index alike under the new key");
  }
}

/** A stored value opened, or why it cannot be: the value's own failure, not the caller's. */
export type Opened<T> = { value: T } | { failure: "revoked" | "corrupt"; error: Error };

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Opens the value of `field` of row `id` as text. A revoked key or altered
 * bytes (a ciphertext from another row or column, or not UTF-8) are the
 * value's failure and returned; anything else (the KMS not ready, the
 * database) is thrown.
 */
export const openText = (
  cipher: FieldCrypto,
  layout: SealedLayout,
  id: number,
  field: string,
  ciphertext: Uint8Array,
): Promise<Opened<string>> =>
  opened(cipher, layout, id, field, ciphertext, true, (plaintext) => decoder.decode(plaintext));

/** Opens a value and seals it again under the active key; failures as openText's (bytes need not be UTF-8). */
export const resealValue = (
  cipher: FieldCrypto,
  layout: SealedLayout,
  id: number,
  field: string,
  ciphertext: Uint8Array,
): Promise<Opened<Sealed>> =>
  opened(cipher, layout, id, field, ciphertext, false, (plaintext) =>
    cipher.encryptField(layout.fieldName(field), plaintext, layout.rowContext(id)),
  );

// `use` sees the plaintext, zeroed once it is done.
async function opened<T>(
  cipher: FieldCrypto,
  layout: SealedLayout,
  id: number,
  field: string,
  ciphertext: Uint8Array,
  text: boolean,
  use: (plaintext: Uint8Array) => T | Promise<T>,
): Promise<Opened<T>> {
  try {
    const { plaintext } = await cipher.decryptField(
      layout.fieldName(field),
      ciphertext,
      layout.rowContext(id),
    );
    try {
      return { value: await use(plaintext) };
    } finally {
      plaintext.fill(0);
    }
  } catch (err) {
    return failure(err, text);
  }
}

function failure(err: unknown, text: boolean): Opened<never> {
  if (isKeyRevoked(err)) return { failure: "revoked", error: err as Error };
  // The decoder's fatal mode throws a TypeError for bytes that are not UTF-8.
  if (isDataCorrupt(err) || (text && err instanceof TypeError))
    return { failure: "corrupt", error: err as Error };
  throw err;
}

/** A failed value as a job's last error records it: the row and field, never the value. */
export const failureNote = (layout: SealedLayout, id: number, field: string, error: Error) =>
  `${layout.noun} ${id} ${field}: ${error.message}`;
