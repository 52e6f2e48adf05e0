/**
 * News of key changes made by any instance (rotations, revocations,
 * expiries, root-key and index-key rotations), implemented in internal/data.
 * A change is announced when it commits; an instance that hears of one drops
 * the keys it holds, so the cache lifetime only bounds staleness while it
 * cannot hear.
 */
export interface KeyEvents {
  /** Calls `onChange` at every change, and when news may have been missed; resolves to the unsubscribe. */
  watch(onChange: () => void): Promise<() => Promise<void>>;
}
