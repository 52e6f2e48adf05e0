import { createHash } from "node:crypto";
import { open, seal, NONCE_BYTES, TAG_BYTES } from "./aead.js";

/**
 * Data keys and the index key are stored wrapped: AES-256-GCM under the root
 * key, bound (AAD) to what they are (e.g. "data-key:v3:AES-256-GCM"), so a
 * wrapped key copied to another row does not unwrap.
 */
export function wrapKey(rootKey: Buffer, key: Buffer, label: string): Buffer {
  const out = Buffer.allocUnsafe(NONCE_BYTES + key.length + TAG_BYTES);
  seal("AES-256-GCM", rootKey, key, Buffer.from(label), out, 0);
  return out;
}

/** Unwraps, or throws: a wrong root key or an altered row. */
export function unwrapKey(rootKey: Buffer, wrapped: Buffer, label: string): Buffer {
  const nonce = wrapped.subarray(0, NONCE_BYTES);
  const sealed = wrapped.subarray(NONCE_BYTES, wrapped.length - TAG_BYTES);
  const tag = wrapped.subarray(wrapped.length - TAG_BYTES);
  return open("AES-256-GCM", rootKey, nonce, sealed, tag, Buffer.from(label));
}

/** A fingerprint for the key_hash column: SHA-256 of the wrapped bytes, never of the key itself. */
export function fingerprint(wrapped: Buffer): string {
  return createHash("sha256").update(wrapped).digest("hex");
}

export const dataKeyLabel = (version: number, algorithm: string) =>
  `data-key:v${version}:${algorithm}`;
export const INDEX_KEY_LABEL = "index-key:v1";
export const AUDIT_KEY_LABEL = "audit-key:v1";
