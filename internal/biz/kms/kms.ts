import type { Context } from "../context.js";
import type { StoredIndexKeys } from "./index_keys.js";
import { ErrorReason, ErrorReasonSchema } from "../../../api/kms/v1/error_reason_pb.js";
import { errorFactory, hasReason } from "../errors.js";

export type KeyStatus = "active" | "inactive" | "expired" | "revoked";

/** A data key as stored: metadata and the key wrapped under the root key. */
export interface DataKey {
  id: string;
  version: number;
  algorithm: string;
  status: KeyStatus;
  createdAt: Date;
  updatedAt: Date;
  expiresAt: Date | null;
  metadata: Record<string, unknown>;
  encryptionCount: bigint;
  wrapped: Buffer;
}

/** What a rotation inserts; the repository picks the version. */
export interface NewDataKey {
  algorithm: string;
  wrapped: Buffer;
  keyHash: string;
  expiresAt: Date;
  metadata: Record<string, unknown>;
}

export interface KeyStats {
  status: KeyStatus;
  algorithm: string;
  keyCount: number;
  earliestCreated: Date;
  latestCreated: Date;
  expiredCount: number;
}

export interface Rotation {
  key: DataKey;
  previous: DataKey | undefined;
  /** False when `onlyIf` declined: `key` is then the active key found. */
  rotated: boolean;
}

/** Storage of keys, implemented in internal/data over kms_data_keys. */
export interface DataKeyRepo {
  active(): Promise<DataKey | undefined>;
  byVersion(version: number): Promise<DataKey | undefined>;
  /** Newest first, versions below `beforeVersion` when given. */
  list(opts: { limit: number; beforeVersion?: number; status?: KeyStatus }): Promise<DataKey[]>;
  /**
   * One transaction, serialised across instances: unless `onlyIf(active)` is
   * false, the active key becomes inactive and `make(nextVersion)` is inserted
   * as the new active key. Announced to every instance.
   */
  rotate(
    /** `rootKeyId`: the root key the database is under (kms_root_key), to wrap with. */
    make: (version: number, rootKeyId: string | undefined) => NewDataKey,
    onlyIf?: (active: DataKey | undefined) => boolean,
    ctx?: Context,
  ): Promise<Rotation>;
  /** Marks a non-active key revoked; undefined when there is no such key. Audited, as rotations are. */
  revoke(version: number, reason: string, ctx?: Context): Promise<DataKey | undefined>;
  /** Marks inactive keys past expires_at expired; returns their versions. */
  expireDue(): Promise<number[]>;
  /** Adds to a key's encryption count; returns the new total. */
  addEncryptions(version: number, count: number): Promise<bigint>;
  stats(): Promise<KeyStats[]>;
  /** The wrapped index key, created by `make` the first time (once across instances). */
  indexKey(make: () => { wrapped: Buffer; keyHash: string }): Promise<Buffer>;
  /** The index keys in use, wrapped; undefined before indexKey() made one. */
  indexKeys(): Promise<StoredIndexKeys | undefined>;
  /** The wrapped audit-chain key, created the same way. */
  auditKey(make: () => { wrapped: Buffer; keyHash: string }): Promise<Buffer>;
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
  /** Calls `onChange` whenever any instance rotates, revokes or expires keys. */
  watch(onChange: () => void): Promise<() => Promise<void>>;
}

/**
 * A store of values the KMS encrypted (the users table, any future one):
 * how many values each data key version protects there.
 */
export interface ProtectedValues {
  countByKeyVersion(): Promise<Map<number, bigint>>;
}

const kmsError = errorFactory(ErrorReasonSchema);

/** A field failed because its key is revoked. */
export const isKeyRevoked = (err: unknown) =>
  hasReason(err, ErrorReasonSchema, ErrorReason.KEY_REVOKED);

/** A field failed because its stored bytes, or its key's stored row, were altered. */
export const isDataCorrupt = (err: unknown) =>
  hasReason(err, ErrorReasonSchema, ErrorReason.CIPHERTEXT_INVALID) ||
  hasReason(err, ErrorReasonSchema, ErrorReason.DATA_KEY_CORRUPT);

export const kmsErrors = {
  keyNotFound: (version: number) =>
    kmsError("NOT_FOUND", ErrorReason.KEY_NOT_FOUND, `no data key has version ${version}`, {
      version: String(version),
    }),
  keyRevoked: (version: number) =>
    kmsError(
      "FAILED_PRECONDITION",
      ErrorReason.KEY_REVOKED,
      `data key version ${version} is revoked`,
      {
        version: String(version),
      },
    ),
  ciphertextInvalid: () =>
    kmsError(
      "INVALID_ARGUMENT",
      ErrorReason.CIPHERTEXT_INVALID,
      "ciphertext is malformed, altered, or belongs to another field or context",
    ),
  dataKeyCorrupt: (version: number) =>
    kmsError(
      "DATA_LOSS",
      ErrorReason.DATA_KEY_CORRUPT,
      `data key version ${version} does not unwrap: its stored row was altered or damaged`,
      { version: String(version) },
    ),
  storedKeyCorrupt: (label: string) =>
    kmsError(
      "DATA_LOSS",
      ErrorReason.DATA_KEY_CORRUPT,
      `the stored key ${label} does not unwrap under either root key: its row was altered or damaged; nothing was re-wrapped`,
      { key: label },
    ),
  reencryptionRunning: () =>
    kmsError(
      "FAILED_PRECONDITION",
      ErrorReason.REENCRYPTION_RUNNING,
      "a re-encryption job is already running (GetReencryptionStatus; StopReencryption)",
    ),
  rootKeyMismatch: (problem: string) =>
    kmsError("FAILED_PRECONDITION", ErrorReason.ROOT_KEY_MISMATCH, problem),
  indexesNotReady: (missing: string[]) =>
    kmsError(
      "FAILED_PRECONDITION",
      ErrorReason.INDEXES_NOT_READY,
      `the blind-index rotation needs these indexes, missing or INVALID: ${missing.join(", ")} (run migrate up, or rebuild them)`,
      { indexes: missing.join(",") },
    ),
  notReady: () =>
    kmsError("UNAVAILABLE", ErrorReason.KMS_NOT_READY, "the KMS has no usable active key yet"),
  invalidPageToken: () =>
    kmsError(
      "INVALID_ARGUMENT",
      ErrorReason.INVALID_PAGE_TOKEN,
      "page_token was not issued for this query",
      {
        field: "page_token",
      },
    ),
};
