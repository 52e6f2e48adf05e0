import {
  CiphertextError,
  decrypt,
  encrypt,
  fieldContext,
  FORMAT_LEGACY,
  readableIn,
  readHeader,
  type Domain,
} from "../../pkg/kms/codec.js";
import type { PageTokens } from "../paging.js";
import type { IndexKeyHolder, SlotHashes } from "./index_keys.js";
import { kmsErrors } from "./errors.js";
import type { Keyring } from "./keyring.js";
import type { EncryptionUsage } from "./kms_usage.js";
import { PII_FIELDS, userFieldName } from "../user.js";

export interface Sealed {
  ciphertext: Buffer;
  keyVersion: number;
}

/**
 * Fields sealed under the active key and bound to their field and context,
 * and their keyed blind indexes, in one key domain. Failures are kmsErrors
 * (KEY_REVOKED, CIPHERTEXT_INVALID, DATA_KEY_CORRUPT, KMS_NOT_READY).
 */
export interface FieldCrypto {
  encryptField(fieldName: string, plaintext: Uint8Array, context?: Uint8Array): Promise<Sealed>;
  decryptField(
    fieldName: string,
    ciphertext: Uint8Array,
    context?: Uint8Array,
  ): Promise<{ plaintext: Uint8Array; keyVersion: number }>;
  /** The keyed blind index of `value` for `fieldName`, under the current index key. */
  hashField(fieldName: string, value: string): string;
}

/**
 * What KmsService's callers get: a key domain of their own. Nothing they
 * send or receive opens, forges or reproduces a value of the service's
 * stores, whatever field name and context they choose.
 */
export type CallerCrypto = FieldCrypto;

/**
 * What other use cases need of the KMS: the stores' domain, the blind
 * indexes under every key in use, and page tokens every instance reads.
 */
export interface FieldCipher extends FieldCrypto {
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

type Seal = FieldCrypto["encryptField"];
type Open = (
  fieldName: string,
  ciphertext: Uint8Array,
  context: Uint8Array | undefined,
  mayOpenLegacy: (fieldName: string) => boolean,
) => ReturnType<FieldCrypto["decryptField"]>;

function sealer(keyring: Keyring, usage: EncryptionUsage, domain: Domain): Seal {
  return async (fieldName, plaintext, context = empty) => {
    // The hot path stays synchronous while the active key is cached.
    const k = keyring.activeNow() ?? (await keyring.active());
    const ciphertext = encrypt(
      { algorithm: k.algorithm, version: k.version },
      k.key,
      plaintext,
      fieldContext(fieldName, context),
      domain,
    );
    usage.record(k.version);
    return { ciphertext, keyVersion: k.version };
  };
}

function opener(keyring: Keyring, domain: Domain): Open {
  return async (fieldName, ciphertext, context = empty, mayOpenLegacy) => {
    let version: number;
    try {
      // Refused before any key is looked up: another domain's value learns
      // nothing of its key's status.
      const header = readHeader(ciphertext);
      if (!readableIn(header, domain)) throw new CiphertextError();
      if (header.format === FORMAT_LEGACY && !mayOpenLegacy(fieldName)) throw new CiphertextError();
      version = header.version;
    } catch {
      throw kmsErrors.ciphertextInvalid();
    }
    const k = keyring.forDecryptionNow(version) ?? (await keyring.forDecryption(version));
    try {
      return {
        plaintext: decrypt(ciphertext, k.key, fieldContext(fieldName, context), domain),
        keyVersion: version,
      };
    } catch (err) {
      if (err instanceof CiphertextError) throw kmsErrors.ciphertextInvalid();
      throw err;
    }
  };
}

/** The service's own stores' cipher (the users table today). */
export function newFieldCipher(
  keyring: Keyring,
  index: IndexKeyHolder,
  tokens: PageTokens,
  usage: EncryptionUsage,
): FieldCipher {
  const open = opener(keyring, "store");
  return {
    encryptField: sealer(keyring, usage, "store"),
    // Values sealed before domains are the stores' own: they keep opening.
    decryptField: (fieldName, ciphertext, context) =>
      open(fieldName, ciphertext, context, () => true),
    hashField: (fieldName, value) => index.hash(fieldName, value, "store"),
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

/**
 * The field names stores sealed under before domains came: a closed list
 * (every store since seals in its own domain only). The associated data
 * holds the name length-prefixed, so only these exact names can open such
 * a value.
 */
const LEGACY_STORE_FIELDS: ReadonlySet<string> = new Set(PII_FIELDS.map(userFieldName));

/**
 * KmsService's callers' cipher. A value sealed before domains may be a
 * caller's own or a store's: it opens unless its field name is one a store
 * sealed under then.
 */
export function newCallerCrypto(
  keyring: Keyring,
  index: IndexKeyHolder,
  usage: EncryptionUsage,
): CallerCrypto {
  const open = opener(keyring, "service");
  const mayOpenLegacy = (fieldName: string) => !LEGACY_STORE_FIELDS.has(fieldName);
  return {
    encryptField: sealer(keyring, usage, "service"),
    decryptField: (fieldName, ciphertext, context) =>
      open(fieldName, ciphertext, context, mayOpenLegacy),
    hashField: (fieldName, value) => index.hash(fieldName, value, "service"),
  };
}
