import { blindIndex, fieldSubkey } from "../../pkg/kms/blindindex.js";
import type { Domain } from "../../pkg/kms/codec.js";
import { INDEX_KEY_LABEL } from "../../pkg/kms/wrap.js";
import { kmsErrors } from "./errors.js";
import type { RootKeys } from "./root_keys.js";
import type { StoredKeys } from "./stored_keys.js";

/**
 * Which index column a key fills: slot 0 is `<field>_hash`, slot 1
 * `<field>_hash_b` (migration 000014). A rotation's new key fills the slot
 * the current key does not.
 */
export type Slot = 0 | 1;

/** A value's blind index per slot: null where no key in use fills that column. */
export type SlotHashes = readonly [string | null, string | null];

/** The index keys as stored: wrapped under the root key. */
export interface StoredIndexKeys {
  /** Bumped by every change of the keys in use. */
  epoch: number;
  slot: Slot;
  wrapped: Buffer;
  /** During a rotation: the new key, filling the other slot. */
  nextWrapped: Buffer | undefined;
}

/** The index keys in use, unwrapped. */
export interface IndexKeys {
  epoch: number;
  slot: Slot;
  key: Buffer;
  next: Buffer | undefined;
}

/**
 * The blind-index keys of one instance and what they compute. Replaced
 * whole by reload() when a rotation changes them; the database refuses a
 * write made with keys no longer in use, and reads carry the epoch they
 * were made under, so a late instance reloads and asks again.
 */
export interface IndexKeyHolder {
  epoch(): number;
  /** The blind index under the current key, in `domain` (KmsService's callers get their own). */
  hash(field: string, value: string, domain: Domain): string;
  /** The blind index under each key in use, by slot: what a write stores and a lookup asks. */
  slots(field: string, value: string): SlotHashes;
  /**
   * Loads the keys in use again: callers during a load share it, and a call
   * while one is under way gets one more load after it (that load may have
   * read the keys before the change this caller heard of).
   */
  reload(): Promise<void>;
  /** Zeroes every key: later calls answer KMS_NOT_READY. */
  close(): void;
}

/** The index keys in use (during a rotation, the new one too), unwrapped. */
export async function loadIndexKeys(
  stored: Pick<StoredKeys, "indexKeys">,
  roots: RootKeys,
): Promise<IndexKeys> {
  const found = await stored.indexKeys();
  if (!found) throw kmsErrors.notReady();
  const unwrap = (wrapped: Buffer) => {
    try {
      return roots.unwrap(wrapped, INDEX_KEY_LABEL).key;
    } catch {
      throw kmsErrors.storedKeyCorrupt(INDEX_KEY_LABEL);
    }
  };
  const key = unwrap(found.wrapped);
  try {
    const next = found.nextWrapped && unwrap(found.nextWrapped);
    return { epoch: found.epoch, slot: found.slot, key, next };
  } catch (err) {
    key.fill(0);
    throw err;
  }
}

interface Loaded {
  keys: IndexKeys;
  subkeys: Map<string, Buffer>;
  nextSubkeys: Map<string, Buffer>;
  serviceSubkeys: Map<string, Buffer>;
}

/** Subkeys of callers' field names kept per index key (KmsService.HashField). */
const MAX_CALLER_SUBKEYS = 256;

const subkeyOf = (
  cache: Map<string, Buffer>,
  key: Buffer,
  field: string,
  domain: Domain = "store",
) => {
  let subkey = cache.get(field);
  if (!subkey) {
    subkey = fieldSubkey(key, field, domain);
    cache.set(field, subkey);
  }
  return subkey;
};

export function newIndexKeyHolder(
  initial: IndexKeys,
  load: () => Promise<IndexKeys>,
): IndexKeyHolder {
  const wrap = (keys: IndexKeys): Loaded => ({
    keys,
    subkeys: new Map(),
    nextSubkeys: new Map(),
    serviceSubkeys: new Map(),
  });
  let current: Loaded | undefined = wrap(initial);
  let loading: Promise<void> | undefined;
  let again: Promise<void> | undefined;
  const use = () => {
    if (!current) throw kmsErrors.notReady();
    return current;
  };
  // Zeroed on the next turn of the event loop: a caller handed a key in
  // this turn finishes with it (see keyring's zeroLater).
  const zero = (l: Loaded) =>
    setImmediate(() => {
      l.keys.key.fill(0);
      l.keys.next?.fill(0);
      for (const cache of [l.subkeys, l.nextSubkeys, l.serviceSubkeys])
        for (const k of cache.values()) k.fill(0);
    });
  const loadOnce = (): Promise<void> =>
    load()
      .then((keys) => {
        const replaced = current;
        if (!replaced) {
          keys.key.fill(0);
          keys.next?.fill(0);
          return;
        }
        current = wrap(keys);
        zero(replaced);
      })
      .finally(() => {
        loading = undefined;
      });
  const reload = (): Promise<void> => {
    if (!loading) {
      loading = loadOnce();
      return loading;
    }
    again ??= loading
      .catch(() => undefined)
      .then(() => {
        again = undefined;
        return reload();
      });
    return again;
  };
  return {
    epoch: () => use().keys.epoch,
    hash(field, value, domain) {
      const l = use();
      const cache = domain === "store" ? l.subkeys : l.serviceSubkeys;
      // Callers name their fields: past a bound, theirs are derived per call
      // (a few microseconds) rather than kept, so memory stays bounded.
      if (domain === "service" && cache.size >= MAX_CALLER_SUBKEYS && !cache.has(field)) {
        const subkey = fieldSubkey(l.keys.key, field, domain);
        try {
          return blindIndex(subkey, field, value);
        } finally {
          subkey.fill(0);
        }
      }
      return blindIndex(subkeyOf(cache, l.keys.key, field, domain), field, value);
    },
    slots(field, value) {
      const l = use();
      const hashes: [string | null, string | null] = [null, null];
      hashes[l.keys.slot] = blindIndex(subkeyOf(l.subkeys, l.keys.key, field), field, value);
      if (l.keys.next) {
        hashes[1 - l.keys.slot] = blindIndex(
          subkeyOf(l.nextSubkeys, l.keys.next, field),
          field,
          value,
        );
      }
      return hashes;
    },
    reload,
    close() {
      if (current) zero(current);
      current = undefined;
    },
  };
}
