import {
  algorithmById,
  NONCE_BYTES,
  open,
  seal,
  TAG_BYTES,
  ALGORITHMS,
  type Algorithm,
} from "./aead.js";

/**
 * The one ciphertext format:
 *
 *   0      format: the key domain (0x02 the service's own stores, 0x03
 *          KmsService's callers), or 0x01 for values sealed before domains
 *   1      algorithm id (1 AES-256-GCM, 2 ChaCha20-Poly1305)
 *   2..5   data key version, uint32 big-endian
 *   6..17  nonce (12 bytes, random)
 *   18..   sealed data, then the 16-byte tag
 *
 * The 6-byte header and the caller's context (where the value lives: table,
 * column, row) are the associated data: changing a header byte, or moving the
 * value to another field or row, fails authentication. The format byte being
 * authenticated is what separates the domains: a caller of KmsService can
 * neither open a stored value (its domain differs whatever names the caller
 * sends) nor forge one (a store refuses the callers' format).
 */
export type Domain = "store" | "service";
/** Sealed before domains existed; read, never written. */
export const FORMAT_LEGACY = 0x01;
const FORMATS: Record<Domain, number> = { store: 0x02, service: 0x03 };
const HEADER_BYTES = 6;
export const OVERHEAD = HEADER_BYTES + NONCE_BYTES + TAG_BYTES;

/** Not a ciphertext of ours, or altered, or bound elsewhere. Says no more. */
export class CiphertextError extends Error {
  override name = "CiphertextError";
  constructor() {
    super("ciphertext is malformed, altered, or belongs to another field or context");
  }
}

export interface Header {
  algorithm: Algorithm;
  version: number;
}

/** A header as read: which format (domain) the value was sealed in. */
export interface ReadHeader extends Header {
  format: number;
}

/** Reads the header without decrypting: which key version a ciphertext needs. */
export function readHeader(ciphertext: Uint8Array): ReadHeader {
  const format = ciphertext[0]!;
  if (ciphertext.length < OVERHEAD || format < FORMAT_LEGACY || format > FORMATS.service)
    throw new CiphertextError();
  const algorithm = algorithmById(ciphertext[1]!);
  // Big-endian uint32 at 2, read without a Buffer view per call.
  const version =
    ciphertext[2]! * 0x1000000 + ((ciphertext[3]! << 16) | (ciphertext[4]! << 8) | ciphertext[5]!);
  if (!algorithm || version === 0) throw new CiphertextError();
  return { format, algorithm, version };
}

/** Seals in `domain`'s format. */
export function encrypt(
  header: Header,
  key: Buffer,
  plaintext: Uint8Array,
  context: Uint8Array,
  domain: Domain,
): Buffer {
  // One buffer for the result, written in place: header, nonce, sealed, tag.
  const out = Buffer.allocUnsafe(OVERHEAD + plaintext.length);
  out[0] = FORMATS[domain];
  out[1] = ALGORITHMS[header.algorithm].id;
  out.writeUInt32BE(header.version, 2);
  seal(header.algorithm, key, plaintext, aad(out, context), out, HEADER_BYTES);
  return out;
}

/** Whether a value with this header may open in `domain`: its own, or one sealed before domains. */
export const readableIn = (header: ReadHeader, domain: Domain) =>
  header.format === FORMATS[domain] || header.format === FORMAT_LEGACY;

/**
 * Decrypts with the key of the header's version (the caller looked it up): a
 * value of `domain`, or one sealed before domains (the caller decides whether
 * it may open that).
 */
export function decrypt(
  ciphertext: Uint8Array,
  key: Buffer,
  context: Uint8Array,
  domain: Domain,
): Buffer {
  const header = readHeader(ciphertext);
  if (!readableIn(header, domain)) throw new CiphertextError();
  // Plain Uint8Array views: a Buffer's subarray makes a Buffer, which costs
  // a small value's decryption a noticeable share of its time.
  const { buffer, byteOffset, length } = ciphertext;
  const sealedAt = HEADER_BYTES + NONCE_BYTES;
  const tagAt = length - TAG_BYTES;
  try {
    return open(
      header.algorithm,
      key,
      new Uint8Array(buffer, byteOffset + HEADER_BYTES, NONCE_BYTES),
      new Uint8Array(buffer, byteOffset + sealedAt, tagAt - sealedAt),
      new Uint8Array(buffer, byteOffset + tagAt, TAG_BYTES),
      aad(ciphertext, context),
    );
  } catch {
    throw new CiphertextError();
  }
}

// The header (the first HEADER_BYTES of `sealed`), then the context
// length-prefixed, so that no (header, context) pair can be read as another.
function aad(sealed: Uint8Array, context: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + 4 + context.length);
  for (let i = 0; i < HEADER_BYTES; i++) out[i] = sealed[i]!;
  out.writeUInt32BE(context.length, HEADER_BYTES);
  out.set(context, HEADER_BYTES + 4);
  return out;
}

/** The context binding a field value to where it is stored. */
export function fieldContext(fieldName: string, extra: Uint8Array = new Uint8Array()): Buffer {
  const nameBytes = Buffer.byteLength(fieldName, "utf8");
  const out = Buffer.allocUnsafe(4 + nameBytes + extra.length);
  out.writeUInt32BE(nameBytes, 0);
  out.write(fieldName, 4, "utf8");
  out.set(extra, 4 + nameBytes);
  return out;
}
