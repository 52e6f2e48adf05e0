import { hkdfSync, pbkdf2Sync } from "node:crypto";
import { readBytes, SecretFileError, withoutFinalLineEnding } from "../secret/file.js";

export const KEY_BYTES = 32;

/** Where the root key comes from; exactly one is set (the config loader checks). */
export interface RootKeySource {
  rootKey: string;
  rootKeyFile: string;
  seed: string;
  salt: string;
  iterations: number;
}

/** The root key cannot be had; the message names the source, never the key. */
export class RootKeyError extends Error {
  override name = "RootKeyError";
}

/**
 * The 32-byte root key: base64 inline, a file holding 32 raw bytes or their
 * base64, or PBKDF2-SHA256(seed, salt, iterations) as the Go original derives
 * it. It is only ever held in memory.
 */
export function loadRootKey(source: RootKeySource, at = "kms"): Buffer {
  if (source.rootKey) return decode(source.rootKey, `${at}.root_key`);
  if (source.rootKeyFile) {
    const where = `${at}.root_key_file`;
    try {
      // Exactly 32 bytes are the key itself, whatever its last byte; any other
      // file is read by the secret-file rule and holds the key's base64.
      const raw = readBytes(where, source.rootKeyFile);
      if (raw.length === KEY_BYTES) return raw;
      const text = withoutFinalLineEnding(raw);
      if (text.length === KEY_BYTES) return text;
      return decode(text.toString("latin1"), `${where} ${source.rootKeyFile}`);
    } catch (err) {
      if (err instanceof SecretFileError) throw new RootKeyError(err.message);
      throw err;
    }
  }
  if (source.seed) {
    if (!source.salt || source.iterations < 100_000) {
      throw new RootKeyError(`${at}.seed needs ${at}.salt and ${at}.iterations of at least 100000`);
    }
    return deriveRootKey(source.seed, source.salt, source.iterations);
  }
  throw new RootKeyError(
    `no root key: set ${at}.root_key, ${at}.root_key_file or ${at}.seed (or KMS_ROOT_KEY)`,
  );
}

/** PBKDF2-HMAC-SHA256, as the Go original derives its root key from seed and salt. */
export function deriveRootKey(
  seed: string,
  salt: string,
  iterations: number,
  bytes = KEY_BYTES,
): Buffer {
  return pbkdf2Sync(seed, salt, iterations, bytes, "sha256");
}

function decode(text: string, where: string): Buffer {
  const key = /^[A-Za-z0-9+/]+={0,2}$/.test(text) ? Buffer.from(text, "base64") : Buffer.alloc(0);
  if (key.length !== KEY_BYTES)
    throw new RootKeyError(`${where}: must be ${KEY_BYTES} bytes, base64-encoded`);
  return key;
}

/**
 * A root key's public name: 16 bytes of HKDF-SHA256 under it, hex. Says which
 * key wraps the stored keys without revealing anything of it.
 */
export function rootKeyId(key: Buffer): string {
  return Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), "root-key-id:v1", 16)).toString(
    "hex",
  );
}
