import { background, type Context } from "./context.js";
import { randomBytes } from "node:crypto";
import { assertAlgorithm, type Algorithm } from "../pkg/kms/aead.js";
import { blindIndex, fieldSubkey } from "../pkg/kms/blindindex.js";
import { pageTokens, type PageTokens } from "../pkg/rpc/pagetoken.js";
import { CiphertextError, decrypt, encrypt, fieldContext, readHeader } from "../pkg/kms/codec.js";
import { dataKeyLabel, fingerprint, INDEX_KEY_LABEL, unwrapKey, wrapKey } from "../pkg/kms/wrap.js";
import type { Logger } from "../pkg/log/logger.js";
import { kmsErrors, type DataKey, type DataKeyRepo, type KeyStatus, type Rotation } from "./kms.js";

export interface KmsSettings {
  algorithm: string;
  rotateIntervalMs: number;
  /** Rotate once a key has encrypted this many values (random-nonce GCM: well under 2^32). */
  maxEncryptionsPerKey: number;
  /** How long an unwrapped key is kept; bounds staleness if a notification is lost. */
  cacheTtlMs: number;
  /** How often each instance checks for due rotation and expiry. */
  maintenanceIntervalMs: number;
}

/** The KMS cannot start: wrong root key, unsupported algorithm… */
export class KmsInitError extends Error {
  override name = "KmsInitError";
}

interface CachedKey {
  key: Buffer;
  /** Set when the key was zeroed: a caller holding it must fetch again. */
  dropped: boolean;
  version: number;
  status: KeyStatus;
  algorithm: Algorithm;
  loadedAt: number;
}

export interface MaintenanceReport {
  expiredVersions: number[];
  rotation: Rotation | undefined;
}

/**
 * Envelope encryption: the root key (memory only) wraps data keys kept by the
 * repository; fields are encrypted with the active data key and bound to their
 * field and context; blind indexes use per-field subkeys of a separate index
 * key. Unwrapped keys are cached for a bounded time, dropped (and zeroed) when
 * any instance announces a change.
 */
export class KmsUsecase {
  private readonly algorithm: Algorithm;
  private readonly cache = new Map<number, CachedKey>();
  private readonly loading = new Map<number, Promise<CachedKey>>();
  private readonly subkeys = new Map<string, Buffer>();
  private activeVersion: number | undefined;
  private activeLoading: Promise<CachedKey> | undefined;
  /** Versions whose stored row did not unwrap when last loaded. */
  private readonly corrupt = new Set<number>();
  /** Bumped by forget(): loads begun before it do not refill the cache. */
  private generation = 0;
  private indexKey: Buffer | undefined;
  private tokens: PageTokens | undefined;
  private pendingEncryptions = new Map<number, number>();
  private timers: NodeJS.Timeout[] = [];
  private unwatch: (() => Promise<void>) | undefined;

  constructor(
    private readonly repo: DataKeyRepo,
    private readonly rootKey: Buffer,
    private readonly settings: KmsSettings,
    private readonly log: Logger,
  ) {
    this.algorithm = assertAlgorithm(settings.algorithm);
  }

  /**
   * Ensures an index key and an active data key exist (creating them once
   * across instances), and proves the root key unwraps them: a wrong root key
   * stops start-up here rather than at the first decryption.
   */
  async init(): Promise<void> {
    const wrappedIndex = await this.repo.indexKey(() => {
      const key = randomBytes(32);
      const wrapped = wrapKey(this.rootKey, key, INDEX_KEY_LABEL);
      key.fill(0);
      return { wrapped, keyHash: fingerprint(wrapped) };
    });
    try {
      this.indexKey = unwrapKey(this.rootKey, wrappedIndex, INDEX_KEY_LABEL);
    } catch {
      throw new KmsInitError(
        "the root key does not unwrap the stored index key: wrong root key (refusing to start)",
      );
    }
    await this.repo.rotate(
      (v) => this.newKey(v, "initial key"),
      (active) => active === undefined,
    );
    try {
      await this.active();
    } catch (err) {
      if (err instanceof KmsInitError) throw err;
      throw new KmsInitError(
        `cannot load the active data key: ${(err as Error).message} (a wrong root key, or an altered row)`,
      );
    }
    this.unwatch = await this.repo.watch(() => this.forget());
    this.timers.push(
      setInterval(() => void this.tick(), this.settings.maintenanceIntervalMs).unref(),
    );
  }

  /** Drops the cached keys: the next use reloads them (after a write refused for a revoked key). */
  reloadKeys(): void {
    this.forget();
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.flushUsage().catch(() => undefined);
    await this.unwatch?.();
    this.forget();
    this.indexKey?.fill(0);
    // A late call then answers KMS_NOT_READY rather than hash under zeros.
    this.indexKey = undefined;
    for (const k of this.subkeys.values()) k.fill(0);
    this.subkeys.clear();
    this.tokens?.destroy();
    this.tokens = undefined;
  }

  /** Encrypts for `fieldName` (and `context`) with the active key. */
  async encryptField(
    fieldName: string,
    plaintext: Uint8Array,
    context: Uint8Array = new Uint8Array(),
  ) {
    // The hot path stays synchronous while the active key is cached.
    const cached = this.activeVersion === undefined ? undefined : this.fresh(this.activeVersion);
    const k = cached ?? (await this.usable(() => this.active()));
    const ciphertext = encrypt(
      { algorithm: k.algorithm, version: k.version },
      k.key,
      plaintext,
      fieldContext(fieldName, context),
    );
    this.pendingEncryptions.set(k.version, (this.pendingEncryptions.get(k.version) ?? 0) + 1);
    return { ciphertext, keyVersion: k.version };
  }

  /** Decrypts a value of `fieldName`; revoked keys refuse, altered bytes fail. */
  async decryptField(
    fieldName: string,
    ciphertext: Uint8Array,
    context: Uint8Array = new Uint8Array(),
  ) {
    let version: number;
    try {
      version = readHeader(ciphertext).version;
    } catch {
      throw kmsErrors.ciphertextInvalid();
    }
    const cached = this.fresh(version);
    if (cached?.status === "revoked") throw kmsErrors.keyRevoked(version);
    const k = cached ?? (await this.usable(() => this.byVersion(version, true)));
    try {
      return {
        plaintext: decrypt(ciphertext, k.key, fieldContext(fieldName, context)),
        keyVersion: version,
      };
    } catch (err) {
      if (err instanceof CiphertextError) throw kmsErrors.ciphertextInvalid();
      throw err;
    }
  }

  /** Page tokens under a key derived from the index key: every instance reads them. */
  pageTokens(): PageTokens {
    if (!this.indexKey) throw kmsErrors.notReady();
    this.tokens ??= pageTokens(this.indexKey);
    return this.tokens;
  }

  /** The keyed blind index of `value` for `fieldName`. */
  hashField(fieldName: string, value: string): string {
    if (!this.indexKey) throw kmsErrors.notReady();
    let subkey = this.subkeys.get(fieldName);
    if (!subkey) {
      subkey = fieldSubkey(this.indexKey, fieldName);
      this.subkeys.set(fieldName, subkey);
    }
    return blindIndex(subkey, fieldName, value);
  }

  async rotate(reason: string, ctx: Context = background): Promise<Rotation> {
    const rotation = await this.repo.rotate(
      (v) => this.newKey(v, reason || "on demand"),
      undefined,
      ctx,
    );
    this.forget();
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
        (v) => this.newKey(v, `rotated to revoke version ${version}`),
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
    this.forget();
    this.log.warn({ version }, "data key revoked");
    return { key, active: (await this.repo.active())! };
  }

  /** Expires keys past expires_at and rotates when the active key is due. Deletes nothing. */
  async maintenance(): Promise<MaintenanceReport> {
    const rotation = await this.rotateIfDue();
    const expiredVersions = await this.repo.expireDue();
    if (expiredVersions.length > 0) this.forget();
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
      k.encryptionCount >= BigInt(this.settings.maxEncryptionsPerKey);
    const rotation = await this.repo.rotate((v) => this.newKey(v, "scheduled"), due);
    if (!rotation.rotated) return undefined;
    this.forget();
    this.log.info(
      { version: rotation.key.version, previous: rotation.previous?.version },
      "data key rotated on schedule",
    );
    return rotation;
  }

  /** Readiness: an active key is at hand (from the cache, or loadable). */
  async ready(): Promise<void> {
    await this.usable(() => this.active());
    // A key seen altered stays a failure until it unwraps again.
    for (const version of [...this.corrupt]) await this.load(version);
  }

  async getKey(version: number): Promise<DataKey> {
    const key = await this.repo.byVersion(version);
    if (!key) throw kmsErrors.keyNotFound(version);
    return key;
  }

  async status() {
    const [active, stats, usage] = await Promise.all([
      this.repo.active(),
      this.repo.stats(),
      this.repo.protectedValues(),
    ]);
    return {
      active,
      stats,
      usage,
      algorithm: this.algorithm,
      rotateIntervalMs: this.settings.rotateIntervalMs,
    };
  }

  listKeys(opts: { limit: number; beforeVersion?: number; status?: KeyStatus }) {
    return this.repo.list(opts);
  }

  private newKey(version: number, reason: string) {
    const key = randomBytes(32);
    const wrapped = wrapKey(this.rootKey, key, dataKeyLabel(version, this.algorithm));
    key.fill(0);
    return {
      algorithm: this.algorithm,
      wrapped,
      keyHash: fingerprint(wrapped),
      expiresAt: new Date(Date.now() + this.settings.rotateIntervalMs),
      metadata: { reason },
    };
  }

  private async tick(): Promise<void> {
    try {
      await this.flushUsage();
      await this.maintenance();
    } catch (err) {
      this.log.warn(
        { err: { message: (err as Error).message } },
        "kms maintenance failed; will retry",
      );
    }
  }

  private async flushUsage(): Promise<void> {
    const pending = this.pendingEncryptions;
    this.pendingEncryptions = new Map();
    for (const [version, count] of pending) await this.repo.addEncryptions(version, count);
  }

  /** Drops every unwrapped data key (zeroed): the next use reloads from the repository. */
  private forget(): void {
    for (const k of this.cache.values()) drop(k);
    this.cache.clear();
    this.activeVersion = undefined;
    // Loads already under way read the keys before the news: they may answer
    // their callers, but must not refill the cache (see store()).
    this.generation++;
    this.activeLoading = undefined;
    this.loading.clear();
  }

  // A key may be dropped between the load resolving and the caller resuming
  // (another continuation ran forget()); fetch again rather than use zeros.
  private async usable(get: () => Promise<CachedKey>): Promise<CachedKey> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const k = await get();
      if (!k.dropped) return k;
    }
    throw kmsErrors.notReady();
  }

  private async active(): Promise<CachedKey> {
    const cached = this.activeVersion === undefined ? undefined : this.fresh(this.activeVersion);
    if (cached) return cached;
    // One load for all concurrent callers.
    if (this.activeLoading) return this.activeLoading;
    const generation = this.generation;
    const loading = this.loadActive(generation).finally(() => {
      if (this.activeLoading === loading) this.activeLoading = undefined;
    });
    this.activeLoading = loading;
    return loading;
  }

  private async loadActive(generation: number): Promise<CachedKey> {
    const row = await this.repo.active();
    if (!row) throw kmsErrors.notReady();
    const k = this.store(row, generation);
    if (generation === this.generation) this.activeVersion = k.version;
    return k;
  }

  private async byVersion(version: number, forDecryption: boolean): Promise<CachedKey> {
    const cached = this.fresh(version);
    const k = cached ?? (await this.load(version));
    if (forDecryption && k.status === "revoked") throw kmsErrors.keyRevoked(version);
    return k;
  }

  private load(version: number): Promise<CachedKey> {
    let pending = this.loading.get(version);
    if (!pending) {
      const generation = this.generation;
      const loading: Promise<CachedKey> = this.repo
        .byVersion(version)
        .then((row) => {
          if (!row) throw kmsErrors.ciphertextInvalid();
          return this.store(row, generation);
        })
        .finally(() => {
          if (this.loading.get(version) === loading) this.loading.delete(version);
        });
      pending = loading;
      this.loading.set(version, pending);
    }
    return pending;
  }

  private fresh(version: number): CachedKey | undefined {
    const k = this.cache.get(version);
    if (!k) return undefined;
    if (Date.now() - k.loadedAt < this.settings.cacheTtlMs) return k;
    drop(k);
    this.cache.delete(version);
    return undefined;
  }

  // Cached only when no forget() happened since the load began: a row read
  // before a revocation must not sit in the cache as still usable.
  private store(row: DataKey, generation: number): CachedKey {
    let key: Buffer;
    try {
      key = unwrapKey(this.rootKey, row.wrapped, dataKeyLabel(row.version, row.algorithm));
    } catch {
      // At start this means a wrong root key (start() says so); later, an
      // altered row: DATA_LOSS, and not ready until it unwraps again.
      this.corrupt.add(row.version);
      throw kmsErrors.dataKeyCorrupt(row.version);
    }
    this.corrupt.delete(row.version);
    const k: CachedKey = {
      key,
      dropped: false,
      version: row.version,
      status: row.status,
      algorithm: assertAlgorithm(row.algorithm),
      loadedAt: Date.now(),
    };
    if (generation !== this.generation) return k;
    const replaced = this.cache.get(row.version);
    if (replaced) drop(replaced);
    this.cache.set(row.version, k);
    return k;
  }
}

function drop(k: CachedKey): void {
  k.dropped = true;
  k.key.fill(0);
}
