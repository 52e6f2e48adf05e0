import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

/** Writes and reads keyset page tokens. */
export interface PageTokens {
  /** A token for the page after `last` (a row id or key version) of `query`. */
  write(last: number, query: string): string;
  /** The position in a token issued for `query`; undefined for any other token. */
  read(token: string, query: string): number | undefined;
  /** Zeroes the key. */
  destroy(): void;
}

const NONCE = 12;
const TAG = 16;

/**
 * Opaque keyset page tokens: the last position served, encrypted and
 * authenticated (AES-256-GCM) under a key derived from `secret`, with the
 * query as associated data. A token shows neither the position nor the
 * filter (a name filter's blind index would otherwise travel in it), cannot
 * be forged, and is refused against another query. Every instance derives
 * the same key, so any of them reads the next page.
 */
export function pageTokens(secret: Buffer): PageTokens {
  const key = Buffer.from(hkdfSync("sha256", secret, Buffer.alloc(0), "page-token:v1", 32));
  return {
    write(last, query) {
      const nonce = randomBytes(NONCE);
      const cipher = createCipheriv("aes-256-gcm", key, nonce).setAAD(Buffer.from(query, "utf8"));
      const position = Buffer.alloc(4);
      position.writeUInt32BE(last);
      const sealed = Buffer.concat([cipher.update(position), cipher.final()]);
      return Buffer.concat([nonce, sealed, cipher.getAuthTag()]).toString("base64url");
    },
    read(token, query) {
      const raw = Buffer.from(token, "base64url");
      if (raw.length !== NONCE + 4 + TAG || raw.toString("base64url") !== token) return undefined;
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, NONCE))
          .setAAD(Buffer.from(query, "utf8"))
          .setAuthTag(raw.subarray(NONCE + 4));
        const position = Buffer.concat([
          decipher.update(raw.subarray(NONCE, NONCE + 4)),
          decipher.final(),
        ]);
        const last = position.readUInt32BE();
        return last > 0 && last <= 2147483647 ? last : undefined;
      } catch {
        return undefined;
      }
    },
    destroy: () => key.fill(0),
  };
}
