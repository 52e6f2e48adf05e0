import type { Context } from "../context.js";

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

/** How data keys are made and when they are rotated (kms.* in the config). */
export interface KeyPolicy {
  algorithm: string;
  /** A new key expires (and is rotated out) after this long. */
  rotateIntervalMs: number;
  /** Rotate once a key has encrypted this many values (random-nonce GCM: well under 2^32). */
  maxEncryptionsPerKey: number;
}

/**
 * The data keys (kms_data_keys), implemented in internal/data. Every change
 * (rotate, revoke, expireDue) is one transaction that records its audit
 * event and is announced to every instance (KeyEvents).
 */
export interface DataKeyRepo {
  active(): Promise<DataKey | undefined>;
  byVersion(version: number): Promise<DataKey | undefined>;
  /** Newest first, versions below `beforeVersion` when given. */
  list(opts: { limit: number; beforeVersion?: number; status?: KeyStatus }): Promise<DataKey[]>;
  /**
   * Serialised across instances: unless `onlyIf(active)` is false, the
   * active key becomes inactive and `make(nextVersion)` is inserted as the
   * new active key.
   */
  rotate(
    /** `rootKeyId`: the root key the database is under (kms_root_key), to wrap with. */
    make: (version: number, rootKeyId: string | undefined) => NewDataKey,
    onlyIf?: (active: DataKey | undefined) => boolean,
    ctx?: Context,
  ): Promise<Rotation>;
  /** Marks a non-active key revoked; undefined when there is no such key. */
  revoke(version: number, reason: string, ctx?: Context): Promise<DataKey | undefined>;
  /** Marks inactive keys past expires_at expired; returns their versions. */
  expireDue(): Promise<number[]>;
  /** Adds to a key's encryption count; returns the new total. */
  addEncryptions(version: number, count: number): Promise<bigint>;
  stats(): Promise<KeyStats[]>;
}

/**
 * A store of values the KMS encrypted (the users table, any future one):
 * how many values each data key version protects there.
 */
export interface ProtectedValues {
  countByKeyVersion(): Promise<Map<number, bigint>>;
}
