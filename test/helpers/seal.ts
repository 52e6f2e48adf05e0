import { rootKeys } from "../../cmd/server/kms.js";
import { encrypt, fieldContext, type Domain } from "../../internal/pkg/kms/codec.js";
import { dataKeyLabel } from "../../internal/pkg/kms/wrap.js";
import { testConfig } from "./app.js";
import { query } from "./catalog.js";
import { sealLegacy } from "./legacy.js";

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
  return { ciphertext: sealLegacy(key, version, plaintext, bound), version };
}
