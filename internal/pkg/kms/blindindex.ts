import { createHmac, hkdfSync } from "node:crypto";
import type { Domain } from "./codec.js";

/**
 * Normalisation before indexing, so that equal values index equally:
 * - email: trimmed, Unicode NFC, lower-cased;
 * - phone: reduced to E.164 digits with a leading "+" (separators dropped);
 * - name: trimmed, NFC, inner whitespace runs collapsed to one space;
 * - any other field: trimmed and NFC.
 */
export function normalise(field: string, value: string): string {
  const base = field.split(".").at(-1) ?? field;
  const text = value.normalize("NFC").trim();
  switch (base) {
    case "email":
      return text.toLowerCase();
    case "phone": {
      const digits = text.replace(/[^0-9]/g, "");
      return text.startsWith("+") ? `+${digits}` : digits;
    }
    case "name":
      return text.replace(/\s+/g, " ");
    default:
      return text;
  }
}

// HKDF labels per domain: they differ in their first character, so no field
// name a caller sends derives a store's subkey.
const LABELS: Record<Domain, string> = {
  store: "blind-index:v1:",
  service: "kms-service:blind-index:v1:",
};

/**
 * Per-field subkey of the index key (HKDF-SHA256), so indexes of different
 * fields, or of the same field in another domain, never match.
 */
export function fieldSubkey(indexKey: Buffer, field: string, domain: Domain): Buffer {
  return Buffer.from(
    hkdfSync("sha256", indexKey, Buffer.alloc(0), `${LABELS[domain]}${field}`, 32),
  );
}

/** The keyed blind index: HMAC-SHA256 of the normalised value, lowercase hex. */
export function blindIndex(subkey: Buffer, field: string, value: string): string {
  return createHmac("sha256", subkey).update(normalise(field, value), "utf8").digest("hex");
}
