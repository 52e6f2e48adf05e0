import { createSecretKey, type KeyObject } from "node:crypto";

// Node 24 checks a raw key for being a KeyObject or a CryptoKey on every
// createHmac and createCipheriv, and that check costs about 15 µs for a
// Buffer (measured: HMAC-SHA256 of an email 17 µs with a Buffer key, 1.6–2.9
// µs with a KeyObject; an AES-256-GCM seal 21 µs against 5–6.6). So each key
// Buffer gets one KeyObject, made at its first use and kept beside it. The
// Buffer stays the key's owner: `zeroKey` zeroes it and drops its KeyObject,
// whose native copy Node clears (OPENSSL_clear_free) when it is collected.
const objects = new WeakMap<Buffer, KeyObject>();

/** The KeyObject of a key Buffer, made once. */
export function keyObject(key: Buffer): KeyObject {
  let found = objects.get(key);
  if (!found) {
    found = createSecretKey(key);
    objects.set(key, found);
  }
  return found;
}

/** Zeroes a key Buffer and forgets its KeyObject. */
export function zeroKey(key: Buffer): void {
  objects.delete(key);
  key.fill(0);
}
