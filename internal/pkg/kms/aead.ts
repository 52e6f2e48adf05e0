import { createCipheriv, createDecipheriv, randomBytes, type CipherGCMTypes } from "node:crypto";

/** The field ciphers; the id is stored in every ciphertext. */
export const ALGORITHMS = {
  "AES-256-GCM": { id: 1, cipher: "aes-256-gcm" },
  "ChaCha20-Poly1305": { id: 2, cipher: "chacha20-poly1305" },
} as const;

export type Algorithm = keyof typeof ALGORITHMS;

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

/** Names from the table's CHECK list that are deliberately not supported. */
const REFUSED: Record<string, string> = {
  "AES-256-CBC": "unauthenticated (no tag): ciphertexts could be altered undetected",
  "SM4-GCM": "not available in Node's crypto; no home-made implementation is acceptable",
};

export function assertAlgorithm(name: string): Algorithm {
  if (name in ALGORITHMS) return name as Algorithm;
  const why = REFUSED[name];
  throw new Error(
    `kms.algorithm ${name} is not supported${why ? `: ${why}` : ""}; use AES-256-GCM or ChaCha20-Poly1305`,
  );
}

const byId = new Map((Object.keys(ALGORITHMS) as Algorithm[]).map((a) => [ALGORITHMS[a].id, a]));

export function algorithmById(id: number): Algorithm | undefined {
  return byId.get(id as 1 | 2);
}

// Nonces come from a pool of CSPRNG bytes drawn 4 KiB at a time: one call
// per 341 seals instead of one per seal (here a CSPRNG call costs about
// 10 us, which made it the largest cost of re-encrypting). Every pool is a
// fresh buffer never written again, so a nonce is a view of bytes handed out
// once.
const POOL_BYTES = NONCE_BYTES * 341;
let pool = Buffer.alloc(0);
let taken = 0;

function freshNonce(): Buffer {
  if (taken + NONCE_BYTES > pool.length) {
    pool = randomBytes(POOL_BYTES);
    taken = 0;
  }
  taken += NONCE_BYTES;
  return pool.subarray(taken - NONCE_BYTES, taken);
}

/**
 * Seals with a fresh random nonce into `out` at `at`: the nonce, the sealed
 * bytes, the tag (out must have NONCE_BYTES + plaintext + TAG_BYTES there).
 */
export function seal(
  algorithm: Algorithm,
  key: Buffer,
  plaintext: Uint8Array,
  aad: Uint8Array,
  out: Buffer,
  at: number,
): void {
  const nonce = freshNonce();
  const cipher = createCipheriv(ALGORITHMS[algorithm].cipher as CipherGCMTypes, key, nonce, {
    authTagLength: TAG_BYTES,
  });
  cipher.setAAD(aad);
  out.set(nonce, at);
  // AEAD stream ciphers: update yields exactly the input's length, final nothing.
  const sealed = cipher.update(plaintext);
  out.set(sealed, at + NONCE_BYTES);
  out.set(cipher.final(), at + NONCE_BYTES + sealed.length);
  out.set(cipher.getAuthTag(), at + NONCE_BYTES + plaintext.length);
}

/** Opens, or throws when the tag does not verify (wrong key, altered bytes, other AAD). */
export function open(
  algorithm: Algorithm,
  key: Buffer,
  nonce: Uint8Array,
  sealed: Uint8Array,
  tag: Uint8Array,
  aad: Uint8Array,
): Buffer {
  const decipher = createDecipheriv(ALGORITHMS[algorithm].cipher as CipherGCMTypes, key, nonce, {
    authTagLength: TAG_BYTES,
  });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const opened = decipher.update(sealed);
  // Verifies the tag (throws otherwise); an AEAD stream cipher has nothing left to yield.
  const rest = decipher.final();
  return rest.length === 0 ? opened : Buffer.concat([opened, rest]);
}
