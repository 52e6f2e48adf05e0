import { CiphertextError, decrypt, encrypt, fieldContext, readHeader } from "../pkg/kms/codec.js";
import type { PageTokens } from "./paging.js";
import type { IndexKeyHolder, SlotHashes } from "./index_keys.js";
import { kmsErrors } from "./kms.js";
import type { Keyring } from "./keyring.js";
import type { EncryptionUsage } from "./kms_usage.js";

export interface Sealed {
  ciphertext: Buffer;
  keyVersion: number;
}

/**
 * What other use cases need of the KMS: fields sealed under the active key
 * and bound to their field and context, their keyed blind indexes, and page
 * tokens every instance reads. Failures are kmsErrors (KEY_REVOKED,
 * CIPHERTEXT_INVALID, DATA_KEY_CORRUPT, KMS_NOT_READY).
 */
export interface FieldCipher {
  encryptField(fieldName: string, plaintext: Uint8Array, context?: Uint8Array): Promise<Sealed>;
  decryptField(
    fieldName: string,
    ciphertext: Uint8Array,
    context?: Uint8Array,
  ): Promise<{ plaintext: Uint8Array; keyVersion: number }>;
  /** The keyed blind index of `value` for `fieldName`, under the current index key. */
  hashField(fieldName: string, value: string): string;
  /**
   * The blind index under each index key in use (two during a rotation), by
   * column slot, and the epoch of those keys: a read answered under another
   * epoch is asked again after reloadIndexKeys().
   */
  indexes(fieldName: string, value: string): { epoch: number; hashes: SlotHashes };
  indexEpoch(): number;
  pageTokens(): PageTokens;
  /** Drops the cached keys (after a write refused for a revoked key). */
  reloadKeys(): void;
  /** Loads the index keys in use again (after a write refused for keys no longer in use). */
  reloadIndexKeys(): Promise<void>;
}

const empty = new Uint8Array();

export function newFieldCipher(
  keyring: Keyring,
  index: IndexKeyHolder,
  tokens: PageTokens,
  usage: EncryptionUsage,
): FieldCipher {
  return {
    async encryptField(fieldName, plaintext, context = empty) {
      // The hot path stays synchronous while the active key is cached.
      const k = keyring.activeNow() ?? (await keyring.active());
      const ciphertext = encrypt(
        { algorithm: k.algorithm, version: k.version },
        k.key,
        plaintext,
        fieldContext(fieldName, context),
      );
      usage.record(k.version);
      return { ciphertext, keyVersion: k.version };
    },
    async decryptField(fieldName, ciphertext, context = empty) {
      let version: number;
      try {
        version = readHeader(ciphertext).version;
      } catch {
        throw kmsErrors.ciphertextInvalid();
      }
      const k = keyring.forDecryptionNow(version) ?? (await keyring.forDecryption(version));
      try {
        return {
          plaintext: decrypt(ciphertext, k.key, fieldContext(fieldName, context)),
          keyVersion: version,
        };
      } catch (err) {
        if (err instanceof CiphertextError) throw kmsErrors.ciphertextInvalid();
        throw err;
      }
    },
    hashField: (fieldName, value) => index.hash(fieldName, value),
    indexes: (fieldName, value) => ({
      epoch: index.epoch(),
      hashes: index.slots(fieldName, value),
    }),
    indexEpoch: () => index.epoch(),
    pageTokens: () => tokens,
    reloadKeys: () => keyring.forget(),
    reloadIndexKeys: () => index.reload(),
  };
}
