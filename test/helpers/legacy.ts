import { createCipheriv } from "node:crypto";

/**
 * A value sealed as the service sealed before key domains (format 1):
 * header (format 1, AES-256-GCM, key version), nonce, sealed data and tag;
 * the associated data the header and the length-prefixed `context`.
 */
export function sealLegacy(
  key: Buffer,
  version: number,
  plaintext: string,
  context: Uint8Array,
): Buffer {
  const head = Buffer.from([1, 1, 0, 0, 0, 0]);
  head.writeUInt32BE(version, 2);
  const nonce = Buffer.alloc(12, 5);
  const aad = Buffer.concat([head, Buffer.alloc(4), context]);
  aad.writeUInt32BE(context.length, 6);
  const cipher = createCipheriv("aes-256-gcm", key, nonce).setAAD(aad);
  const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([head, nonce, sealed]);
}
