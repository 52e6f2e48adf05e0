import type { Context } from "../context.js";
import type { StoredIndexKeys } from "./index_keys.js";

/** What makes a key of its own kind the first time: it wrapped, and its fingerprint. */
export type MakeKey = () => { wrapped: Buffer; keyHash: string };

/**
 * The keys besides the data keys, implemented in internal/data: the index
 * keys (kms_index_keys), the audit-chain key (kms_audit_key), and the root
 * key every stored key is wrapped under (kms_root_key).
 */
export interface StoredKeys {
  /** The wrapped index key, created by `make` the first time (once across instances). */
  indexKey(make: MakeKey): Promise<Buffer>;
  /** The index keys in use, wrapped; undefined before indexKey() made one. */
  indexKeys(): Promise<StoredIndexKeys | undefined>;
  /** The wrapped audit-chain key, created the same way. */
  auditKey(make: MakeKey): Promise<Buffer>;
  /** The id of the root key the stored keys are wrapped under; undefined until recorded. */
  rootKeyId(): Promise<string | undefined>;
  /** Records `id` as the root key the stored keys are under, unless one is recorded; the recorded id. */
  recordRootKeyId(id: string): Promise<string>;
  /**
   * One transaction, serialised with rotations: when the database is under
   * `from`, every stored key (data keys, index key, audit key) is replaced
   * by `rewrap(wrapped, label)` and the database is recorded under `to`;
   * audited and announced. `rotated` false, nothing written, when it is
   * already under `to`; ROOT_KEY_MISMATCH when under neither.
   */
  rewrapAll(
    opts: { from: string; to: string; rewrap: (wrapped: Buffer, label: string) => Buffer },
    ctx?: Context,
  ): Promise<{ rotated: boolean; rewrapped: number }>;
}
