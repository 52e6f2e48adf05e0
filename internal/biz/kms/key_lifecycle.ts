import { randomBytes } from "node:crypto";
import { assertAlgorithm, type Algorithm } from "../../pkg/kms/aead.js";
import { AUDIT_KEY_LABEL, dataKeyLabel, fingerprint, INDEX_KEY_LABEL } from "../../pkg/kms/wrap.js";
import type { RootKeys } from "./root_keys.js";
import type { AuditChain } from "./audit.js";
import type { Logger } from "../../pkg/log/logger.js";
import { background, type Context } from "../context.js";
import {
  kmsErrors,
  type DataKey,
  type DataKeyRepo,
  type KeyStatus,
  type ProtectedValues,
  type Rotation,
} from "./kms.js";
import type { Keyring } from "./keyring.js";
import type { IndexKeys } from "./index_keys.js";
import { MAX_POSITION, pageTokens, paging, type PageTokens } from "../paging.js";

export interface KeyPolicy {
  algorithm: string;
  /** A new key expires (and is rotated out) after this long. */
  rotateIntervalMs: number;
  /** Rotate once a key has encrypted this many values (random-nonce GCM: well under 2^32). */
  maxEncryptionsPerKey: number;
}

/** The KMS cannot start: wrong root key, unsupported algorithm… */
export class KmsInitError extends Error {
  override name = "KmsInitError";
}

export interface MaintenanceReport {
  expiredVersions: number[];
  rotation: Rotation | undefined;
}

export interface RootKeyRotation {
  /** False when the stored keys were already under the configured root key. */
  rotated: boolean;
  rewrapped: number;
  rootKeyId: string;
  previousRootKeyId: string;
}

export interface KeyStatusReport {
  active: DataKey | undefined;
  stats: Awaited<ReturnType<DataKeyRepo["stats"]>>;
  usage: Map<number, bigint>;
  /** Inactive and expired keys no stored value uses, ascending. */
  unreferenced: number[];
  algorithm: Algorithm;
  rotateIntervalMs: number;
  /** The id of the root key the stored keys are wrapped under. */
  rootKeyId: string | undefined;
}

/**
 * The life of data keys: created, rotated (on demand, on schedule, past
 * their encryption count), revoked, expired; never deleted. Every change is
 * one repository transaction announced to every instance; this instance's
 * keyring forgets its keys at once.
 */
export class KeyLifecycle {
  private readonly algorithm: Algorithm;
  private readonly repo: DataKeyRepo;
  private readonly keyring: Keyring;
  private readonly roots: RootKeys;
  private readonly policy: KeyPolicy;
  private readonly stores: ProtectedValues[];
  private readonly audit: AuditChain;
  private readonly log: Logger;

  constructor(parts: {
    repo: DataKeyRepo;
    keyring: Keyring;
    roots: RootKeys;
    policy: KeyPolicy;
    /** Where encrypted values live, for the usage counts of GetStatus. */
    stores: ProtectedValues[];
    /** Loaded with the audit key by init(). */
    audit: AuditChain;
    log: Logger;
  }) {
    ({
      audit: this.audit,
      repo: this.repo,
      keyring: this.keyring,
      roots: this.roots,
      policy: this.policy,
      stores: this.stores,
      log: this.log,
    } = parts);
    this.algorithm = assertAlgorithm(parts.policy.algorithm);
  }

  /**
   * Ensures an index key and an active data key exist (creating them once
   * across instances), and proves the root key unwraps them: a wrong root key
   * stops start-up here rather than at the first decryption. Returns the
   * unwrapped index keys in use, and the page-token codec every instance
   * shares.
   */
  async init(): Promise<{ index: IndexKeys; pageTokens: PageTokens }> {
    const recorded = await this.repo.rootKeyId();
    if (recorded !== undefined && !this.roots.holds(recorded)) {
      throw new KmsInitError(this.notHeld(recorded));
    }
    // The index key first: where it exists it proves the root key before
    // anything new is wrapped under it. The audit key before the initial
    // data key, whose creation is an audited event. Keys made here (a fresh
    // database) go under the recorded root key.
    let tokens: PageTokens | undefined;
    const index = await this.singletonKey(
      (m) => this.repo.indexKey(m),
      INDEX_KEY_LABEL,
      "index key",
      recorded ?? this.roots.currentId,
    );
    try {
      // A database from before kms_root_key: the key that unwrapped its
      // index key is the one it is under.
      const under = recorded ?? (await this.repo.recordRootKeyId(index.id));
      if (under !== index.id && recorded === undefined) {
        throw new KmsInitError("another instance recorded another root key at the same time");
      }
      const audit = await this.singletonKey(
        (m) => this.repo.auditKey(m),
        AUDIT_KEY_LABEL,
        "audit key",
        under,
      );
      this.audit.use(audit.key);
      // Page tokens outlive index-key rotations: their key comes from the
      // audit key (HKDF, a label of its own), which never rotates.
      tokens = pageTokens(audit.key);
      await this.repo.rotate(
        (v, id) => this.newKey(v, "initial key", id),
        (active) => active === undefined,
      );
      await this.keyring.active().catch((err: unknown) => {
        throw new KmsInitError(
          `cannot load the active data key: ${(err as Error).message} (a wrong root key, or an altered row)`,
        );
      });
    } catch (err) {
      this.audit.forget();
      tokens?.destroy();
      throw err;
    } finally {
      index.key.fill(0);
    }
    let keys: IndexKeys;
    try {
      keys = await this.loadIndexKeys();
    } catch (err) {
      this.audit.forget();
      tokens!.destroy();
      throw new KmsInitError(`cannot load the index keys: ${(err as Error).message}`);
    }
    if (this.roots.expiredPreviousId) {
      this.log.warn(
        `kms.previous_root_key's window ended at ${this.roots.previousUntil!.toISOString()}; it is not used: remove it from the configuration`,
      );
    } else if (this.roots.previousId && (recorded ?? index.id) === this.roots.currentId) {
      this.roots.dropPrevious();
      this.log.info(
        "the stored keys are under kms.root_key: kms.previous_root_key is not used and can be removed",
      );
    }
    return { index: keys, pageTokens: tokens! };
  }

  /** The index keys in use (during a rotation, the new one too), unwrapped. */
  async loadIndexKeys(): Promise<IndexKeys> {
    const stored = await this.repo.indexKeys();
    if (!stored) throw kmsErrors.notReady();
    const unwrap = (wrapped: Buffer) => {
      try {
        return this.roots.unwrap(wrapped, INDEX_KEY_LABEL).key;
      } catch {
        throw kmsErrors.storedKeyCorrupt(INDEX_KEY_LABEL);
      }
    };
    const key = unwrap(stored.wrapped);
    try {
      const next = stored.nextWrapped && unwrap(stored.nextWrapped);
      return { epoch: stored.epoch, slot: stored.slot, key, next };
    } catch (err) {
      key.fill(0);
      throw err;
    }
  }

  /**
   * Re-wraps every stored key (data keys, index key, audit key) from the
   * previous root key to the configured one, in one transaction. Every
   * instance of the rolling deploy must hold both keys first (README).
   */
  async rotateRootKey(ctx: Context = background): Promise<RootKeyRotation> {
    const from = this.roots.previousId;
    const to = this.roots.currentId;
    if (!from) {
      // Asked again after the rotation (a deploy script's retry): done already.
      if ((await this.repo.rootKeyId()) === to) {
        return { rotated: false, rewrapped: 0, rootKeyId: to, previousRootKeyId: "" };
      }
      throw kmsErrors.rootKeyMismatch(
        "this instance has no kms.previous_root_key (or its window has ended): nothing to rotate from",
      );
    }
    const result = await this.repo.rewrapAll(
      {
        from,
        to,
        rewrap: (wrapped, label) => {
          let key: Buffer;
          try {
            key = this.roots.unwrap(wrapped, label).key;
          } catch {
            throw kmsErrors.storedKeyCorrupt(label);
          }
          try {
            return this.roots.wrap(to, key, label);
          } finally {
            key.fill(0);
          }
        },
      },
      ctx,
    );
    this.keyring.forget();
    this.roots.dropPrevious();
    if (result.rotated) {
      this.log.warn(
        { rewrapped: result.rewrapped },
        "root key rotated: every stored key re-wrapped",
      );
    }
    return { ...result, rootKeyId: to, previousRootKeyId: from };
  }

  private notHeld(recorded: string): string {
    if (recorded === this.roots.expiredPreviousId) {
      return `the stored keys are still wrapped under kms.previous_root_key, whose window ended at ${this.roots.previousUntil!.toISOString()}: extend kms.previous_root_key.until and rotate the root key (kms root-key rotate) (refusing to start)`;
    }
    return "the root key is not the one the stored keys are wrapped under: wrong root key (refusing to start)";
  }

  /**
   * A key of its own kind (index, audit), random, created once across
   * instances and kept wrapped under the root key `under`; unwrapped here,
   * which proves the root key.
   */
  private async singletonKey(
    stored: (make: () => { wrapped: Buffer; keyHash: string }) => Promise<Buffer>,
    label: string,
    name: string,
    under: string,
  ): Promise<{ key: Buffer; id: string }> {
    const wrapped = await stored(() => {
      const key = randomBytes(32);
      const sealed = this.roots.wrap(under, key, label);
      key.fill(0);
      return { wrapped: sealed, keyHash: fingerprint(sealed) };
    });
    try {
      return this.roots.unwrap(wrapped, label);
    } catch {
      throw new KmsInitError(
        `the root key does not unwrap the stored ${name}: wrong root key (refusing to start)`,
      );
    }
  }

  async rotate(reason: string, ctx: Context = background): Promise<Rotation> {
    const rotation = await this.repo.rotate(
      (v, id) => this.newKey(v, reason || "on demand", id),
      undefined,
      ctx,
    );
    this.keyring.forget();
    this.log.info(
      { version: rotation.key.version, previous: rotation.previous?.version },
      "data key rotated",
    );
    return rotation;
  }

  /** Revokes a key; the active key is rotated out first. */
  async revoke(
    version: number,
    reason: string,
    ctx: Context = background,
  ): Promise<{ key: DataKey; active: DataKey }> {
    const current = await this.repo.active();
    if (current?.version === version) {
      await this.repo.rotate(
        (v, id) => this.newKey(v, `rotated to revoke version ${version}`, id),
        (active) => active?.version === version,
        ctx,
      );
    }
    const key = await this.repo.revoke(version, reason, ctx);
    if (!key) {
      const existing = await this.repo.byVersion(version);
      if (!existing) throw kmsErrors.keyNotFound(version);
      if (existing.status === "revoked")
        return { key: existing, active: (await this.repo.active())! };
      throw kmsErrors.notReady();
    }
    this.keyring.forget();
    this.log.warn({ version }, "data key revoked");
    return { key, active: (await this.repo.active())! };
  }

  /** Expires keys past expires_at and rotates when the active key is due. Deletes nothing. */
  async maintenance(): Promise<MaintenanceReport> {
    const rotation = await this.rotateIfDue();
    const expiredVersions = await this.repo.expireDue();
    if (expiredVersions.length > 0) this.keyring.forget();
    return { expiredVersions, rotation };
  }

  /**
   * Rotates when the active key is past expires_at or its encryption count:
   * when every instance's timer fires together, the first one rotates and the
   * others find a fresh key and do nothing.
   */
  async rotateIfDue(): Promise<Rotation | undefined> {
    const due = (k: DataKey | undefined) =>
      k === undefined ||
      (k.expiresAt !== null && k.expiresAt.getTime() <= Date.now()) ||
      k.encryptionCount >= BigInt(this.policy.maxEncryptionsPerKey);
    const rotation = await this.repo.rotate((v, id) => this.newKey(v, "scheduled", id), due);
    if (!rotation.rotated) return undefined;
    this.keyring.forget();
    this.log.info(
      { version: rotation.key.version, previous: rotation.previous?.version },
      "data key rotated on schedule",
    );
    return rotation;
  }

  /** Readiness: an active key is at hand, and no key seen altered is still so. */
  async ready(): Promise<void> {
    await this.keyring.active();
    await this.keyring.checkCorrupt();
  }

  async getKey(version: number): Promise<DataKey> {
    const key = await this.repo.byVersion(version);
    if (!key) throw kmsErrors.keyNotFound(version);
    return key;
  }

  async status(): Promise<KeyStatusReport> {
    const [active, stats, counts, keys, rootKeyId] = await Promise.all([
      this.repo.active(),
      this.repo.stats(),
      Promise.all(this.stores.map((s) => s.countByKeyVersion())),
      this.repo.list({ limit: MAX_POSITION }),
      this.repo.rootKeyId(),
    ]);
    const usage = new Map<number, bigint>();
    for (const count of counts) {
      for (const [version, n] of count) usage.set(version, (usage.get(version) ?? 0n) + n);
    }
    const unreferenced = keys
      .filter((k) => (k.status === "inactive" || k.status === "expired") && !usage.has(k.version))
      .map((k) => k.version)
      .sort((a, b) => a - b);
    return {
      active,
      stats,
      usage,
      unreferenced,
      algorithm: this.algorithm,
      rotateIntervalMs: this.policy.rotateIntervalMs,
      rootKeyId,
    };
  }

  /** Newest first, a page at a time; tokens bind each page to its status filter. */
  async listKeys(
    request: { pageSize: number; pageToken: string; status?: KeyStatus },
    tokens: PageTokens,
  ): Promise<{ keys: DataKey[]; nextPageToken: string }> {
    const pages = paging(tokens, request, `keys:${request.status ?? ""}`);
    if (!pages) throw kmsErrors.invalidPageToken();
    const found = await this.repo.list({
      limit: pages.fetch,
      beforeVersion: pages.from,
      status: request.status,
    });
    const { page, nextPageToken } = pages.finish(found, (k) => k.version);
    return { keys: page, nextPageToken };
  }

  /** A new random index key wrapped under the root key the database is under (a rotation's next key). */
  newIndexKey(rootKeyId: string | undefined): Buffer {
    const under = this.rootKeyToWrapWith(rootKeyId);
    const key = randomBytes(32);
    try {
      return this.roots.wrap(under, key, INDEX_KEY_LABEL);
    } finally {
      key.fill(0);
    }
  }

  private rootKeyToWrapWith(rootKeyId: string | undefined): string {
    const under = rootKeyId ?? this.roots.currentId;
    if (!this.roots.holds(under)) {
      throw kmsErrors.rootKeyMismatch(
        "the stored keys were re-wrapped under a root key this instance does not hold: restart it with the new kms.root_key",
      );
    }
    return under;
  }

  private newKey(version: number, reason: string, rootKeyId: string | undefined) {
    const under = this.rootKeyToWrapWith(rootKeyId);
    const key = randomBytes(32);
    const wrapped = this.roots.wrap(under, key, dataKeyLabel(version, this.algorithm));
    key.fill(0);
    return {
      algorithm: this.algorithm,
      wrapped,
      keyHash: fingerprint(wrapped),
      expiresAt: new Date(Date.now() + this.policy.rotateIntervalMs),
      metadata: { reason },
    };
  }
}
