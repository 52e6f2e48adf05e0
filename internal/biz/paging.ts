import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { keyObject, zeroKey } from "../pkg/kms/key_object.js";

// Keyset paging, as both APIs page: sizes, bounds and the token codec.

/** Page size when a request names none (each API's validation bounds the size). */
export const DEFAULT_PAGE = 50;

/**
 * The largest row id or key version: their columns are INTEGER (int4). A
 * larger number (an altered ciphertext header, a careless id) names nothing.
 */
export const MAX_POSITION = 2147483647;

/** Whether `n` can name a row (1..MAX_POSITION). */
export const isPosition = (n: number) => Number.isInteger(n) && n > 0 && n <= MAX_POSITION;

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
      const cipher = createCipheriv("aes-256-gcm", keyObject(key), nonce).setAAD(
        Buffer.from(query, "utf8"),
      );
      const position = Buffer.alloc(4);
      position.writeUInt32BE(last);
      const sealed = Buffer.concat([cipher.update(position), cipher.final()]);
      return Buffer.concat([nonce, sealed, cipher.getAuthTag()]).toString("base64url");
    },
    read(token, query) {
      const raw = Buffer.from(token, "base64url");
      if (raw.length !== NONCE + 4 + TAG || raw.toString("base64url") !== token) return undefined;
      try {
        const decipher = createDecipheriv("aes-256-gcm", keyObject(key), raw.subarray(0, NONCE))
          .setAAD(Buffer.from(query, "utf8"))
          .setAuthTag(raw.subarray(NONCE + 4));
        const position = Buffer.concat([
          decipher.update(raw.subarray(NONCE, NONCE + 4)),
          decipher.final(),
        ]);
        const last = position.readUInt32BE();
        return isPosition(last) ? last : undefined;
      } catch {
        return undefined;
      }
    },
    destroy: () => zeroKey(key),
  };
}

/** One page of a keyset listing: where it starts, and how to end it. */
export interface Paging {
  /** Rows to ask for: one more than the page, to learn whether another follows. */
  fetch: number;
  /** The position after (or before) which the page starts; undefined for the first. */
  from: number | undefined;
  /** The page out of the rows fetched, and the token for the next one ("" at the end). */
  finish<T>(rows: T[], position: (row: T) => number): { page: T[]; nextPageToken: string };
}

/**
 * Reads a page request for `query` (which binds the token to its filter).
 * Undefined when the token was not issued for this query.
 */
export function paging(
  tokens: PageTokens,
  request: { pageSize: number; pageToken: string },
  query: string,
): Paging | undefined {
  const limit = request.pageSize || DEFAULT_PAGE;
  const from = request.pageToken ? tokens.read(request.pageToken, query) : undefined;
  if (request.pageToken && from === undefined) return undefined;
  return {
    fetch: limit + 1,
    from,
    finish(rows, position) {
      const page = rows.slice(0, limit);
      const more = rows.length > limit;
      return { page, nextPageToken: more ? tokens.write(position(page.at(-1)!), query) : "" };
    },
  };
}
