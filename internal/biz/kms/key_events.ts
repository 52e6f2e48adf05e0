import type { AuditEntry, AuditKind } from "./audit_chain.js";

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

/**
 * What each kind of change tells the other instances (their listeners
 * reload on any news; the text says what changed to anyone listening by
 * hand). Kinds not listed change no key an instance holds (the
 * re-encryption job's).
 */
const NEWS: Partial<Record<AuditKind, (details: Record<string, string>) => string>> = {
  key_generated: (d) => `rotated:${d.version}`,
  key_rotated: (d) => `rotated:${d.version}`,
  key_revoked: (d) => `revoked:${d.version}`,
  key_expired: () => "expired",
  root_key_rotated: () => "root",
  index_key_rotation_started: () => "index",
  index_key_rotated: () => "index",
};

/** The news a recorded change sends every instance when it commits; undefined: none. */
export const announcement = (entry: Pick<AuditEntry, "kind" | "details">): string | undefined =>
  NEWS[entry.kind]?.(entry.details);
