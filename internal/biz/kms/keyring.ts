import { assertAlgorithm, type Algorithm } from "../../pkg/kms/aead.js";
import { dataKeyLabel } from "../../pkg/kms/wrap.js";
import type { RootKeys } from "./root_keys.js";
import type { DataKey, DataKeyRepo, KeyStatus } from "./data_keys.js";
import { kmsErrors } from "./errors.js";

/** An unwrapped data key, good for use at once (see Keyring.forget). */
export interface RingKey {
  readonly key: Buffer;
  readonly version: number;
  readonly status: KeyStatus;
  readonly algorithm: Algorithm;
}

interface Cached extends RingKey {
  loadedAt: number;
}

/**
 * The unwrapped data keys of one instance: loaded from the repository once
 * for all concurrent callers, kept for `ttlMs`, dropped (and zeroed) when
 * `forget()` says that keys changed somewhere.
 */
export interface Keyring {
  /** The active key when it is cached: the synchronous fast path. */
  activeNow(): RingKey | undefined;
  active(): Promise<RingKey>;
  /** The key of `version` for decrypting: KEY_REVOKED when it is revoked. */
  forDecryption(version: number): Promise<RingKey>;
  /** forDecryption's synchronous fast path: the key when it is cached, else undefined. */
  forDecryptionNow(version: number): RingKey | undefined;
  /** Drops every key: the next use reloads it. */
  forget(): void;
  /** Fails (DATA_KEY_CORRUPT) while a key seen altered still does not unwrap. */
  checkCorrupt(): Promise<void>;
}

export function newKeyring(
  repo: Pick<DataKeyRepo, "active" | "byVersion">,
  roots: RootKeys,
  ttlMs: number,
): Keyring {
  const cache = new Map<number, Cached>();
  const loading = new Map<number, Promise<RingKey>>();
  let activeVersion: number | undefined;
  let activeLoading: Promise<RingKey> | undefined;
  // Versions whose stored row did not unwrap when last loaded.
  const corrupt = new Set<number>();
  // Bumped by forget(): loads begun before it answer their callers but do not
  // refill the cache, so a row read before a revocation is not kept as usable.
  let generation = 0;

  const fresh = (version: number): Cached | undefined => {
    const k = cache.get(version);
    if (!k) return undefined;
    if (Date.now() - k.loadedAt < ttlMs) return k;
    cache.delete(version);
    zeroLater(k);
    return undefined;
  };

  const store = (row: DataKey, since: number): RingKey => {
    let key: Buffer;
    try {
      key = roots.unwrap(row.wrapped, dataKeyLabel(row.version, row.algorithm)).key;
    } catch {
      // At start this means a wrong root key (bootstrap says so); later,
      // an altered row: DATA_LOSS, and not ready until it unwraps again.
      corrupt.add(row.version);
      throw kmsErrors.dataKeyCorrupt(row.version);
    }
    corrupt.delete(row.version);
    const k: Cached = {
      key,
      version: row.version,
      status: row.status,
      algorithm: assertAlgorithm(row.algorithm),
      loadedAt: Date.now(),
    };
    if (since !== generation) {
      zeroLater(k);
      return k;
    }
    const replaced = cache.get(row.version);
    if (replaced) zeroLater(replaced);
    cache.set(row.version, k);
    return k;
  };

  const load = (version: number): Promise<RingKey> => {
    const pending = loading.get(version);
    if (pending) return pending;
    const since = generation;
    const promise: Promise<RingKey> = repo
      .byVersion(version)
      .then((row) => {
        if (!row) throw kmsErrors.ciphertextInvalid();
        return store(row, since);
      })
      .finally(() => {
        if (loading.get(version) === promise) loading.delete(version);
      });
    loading.set(version, promise);
    return promise;
  };

  const usable = <K extends RingKey>(k: K): K => {
    if (k.status === "revoked") throw kmsErrors.keyRevoked(k.version);
    return k;
  };
  const activeNow = () => (activeVersion === undefined ? undefined : fresh(activeVersion));

  return {
    activeNow,
    active: () => {
      const cached = activeNow();
      if (cached) return Promise.resolve(cached);
      if (activeLoading) return activeLoading;
      const since = generation;
      const promise = repo
        .active()
        .then((row) => {
          if (!row) throw kmsErrors.notReady();
          const k = store(row, since);
          if (since === generation) activeVersion = k.version;
          return k;
        })
        .finally(() => {
          if (activeLoading === promise) activeLoading = undefined;
        });
      activeLoading = promise;
      return promise;
    },
    forDecryption: async (version) => usable(fresh(version) ?? (await load(version))),
    forDecryptionNow: (version) => {
      const k = fresh(version);
      return k && usable(k);
    },
    forget: () => {
      for (const k of cache.values()) zeroLater(k);
      cache.clear();
      activeVersion = undefined;
      generation++;
      activeLoading = undefined;
      loading.clear();
    },
    checkCorrupt: async () => {
      for (const version of [...corrupt]) await load(version);
    },
  };
}

// A caller may hold a key it was just handed while another continuation
// drops it (a rotation finishing between the load and the caller resuming).
// Every use of a key is synchronous and follows its hand-over within the
// same run of continuations, so zeroing waits for the next turn of the event
// loop: no caller ever encrypts under zeros, and none needs to check.
function zeroLater(k: RingKey): void {
  setImmediate(() => k.key.fill(0));
}
