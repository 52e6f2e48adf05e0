import { createCipheriv } from "node:crypto";
import { rootKeys } from "../../cmd/server/wire.js";
import { encrypt, fieldContext, type Domain } from "../../internal/pkg/kms/codec.js";
import { dataKeyLabel } from "../../internal/pkg/kms/wrap.js";
import { testConfig } from "./app.js";
import { query } from "./catalog.js";

const enc = (s: string) => new TextEncoder().encode(s);

/** The database's active data key, unwrapped with the test root key. */
async function activeKey(url: string) {
  const [row] = await query<{ version: number; algorithm: string; encrypted_key: Buffer }>(
    url,
    "SELECT version, algorithm, encrypted_key FROM kms_data_keys WHERE status = 'active'",
  );
  const roots = rootKeys(testConfig(url).kms!);
  const key = roots.unwrap(row!.encrypted_key, dataKeyLabel(row!.version, row!.algorithm)).key;
  return { key, version: row!.version };
}

/**
 * Seals as a writer outside the service would, with the stored active key:
 * in `domain`, or in format 1 (before key domains) when `domain` is "legacy".
 */
export async function sealWithStoredKey(
  url: string,
  domain: Domain | "legacy",
  plaintext: string,
  fieldName: string,
  context: string,
): Promise<{ ciphertext: Buffer; version: number }> {
  const { key, version } = await activeKey(url);
  const bound = fieldContext(fieldName, enc(context));
  if (domain !== "legacy") {
    const ciphertext = encrypt(
      { algorithm: "AES-256-GCM", version },
      key,
      enc(plaintext),
      bound,
      domain,
    );
    return { ciphertext, version };
  }
  // Format 1: header, then the nonce; associated data the header and the
  // length-prefixed context.
  const head = Buffer.from([1, 1, 0, 0, 0, 0]);
  head.writeUInt32BE(version, 2);
  const nonce = Buffer.alloc(12, 5);
  const aad = Buffer.concat([head, Buffer.alloc(4), bound]);
  aad.writeUInt32BE(bound.length, 6);
  const cipher = createCipheriv("aes-256-gcm", key, nonce).setAAD(aad);
  const sealed = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { ciphertext: Buffer.concat([head, nonce, sealed]), version };
}
