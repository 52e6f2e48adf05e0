import { blindIndex, fieldSubkey } from "../pkg/kms/blindindex.js";
import { CiphertextError, decrypt, encrypt, fieldContext, readHeader } from "../pkg/kms/codec.js";
import { pageTokens, type PageTokens } from "./paging.js";
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
  /** The keyed blind index of `value` for `fieldName`. */
  hashField(fieldName: string, value: string): string;
  pageTokens(): PageTokens;
  /** Drops the cached keys (after a write refused for a revoked key). */
  reloadKeys(): void;
}

/** A FieldCipher that also forgets its index key when the KMS stops. */
export interface ClosableFieldCipher extends FieldCipher {
  /** Zeroes the index key and its subkeys: later calls answer KMS_NOT_READY. */
  close(): void;
}

const empty = new Uint8Array();

export function newFieldCipher(
  keyring: Keyring,
  indexKey: Buffer,
  usage: EncryptionUsage,
): ClosableFieldCipher {
  let index: Buffer | undefined = indexKey;
  const subkeys = new Map<string, Buffer>();
  let tokens: PageTokens | undefined;
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
      const k = await keyring.forDecryption(version);
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
    hashField(fieldName, value) {
      if (!index) throw kmsErrors.notReady();
      let subkey = subkeys.get(fieldName);
      if (!subkey) {
        subkey = fieldSubkey(index, fieldName);
        subkeys.set(fieldName, subkey);
      }
      return blindIndex(subkey, fieldName, value);
    },
    pageTokens() {
      if (!index) throw kmsErrors.notReady();
      tokens ??= pageTokens(index);
      return tokens;
    },
    reloadKeys: () => keyring.forget(),
    close() {
      index?.fill(0);
      index = undefined;
      for (const k of subkeys.values()) k.fill(0);
      subkeys.clear();
      tokens?.destroy();
      tokens = undefined;
    },
  };
}
