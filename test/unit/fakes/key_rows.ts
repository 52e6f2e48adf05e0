import { randomBytes } from "node:crypto";
import type { DataKey } from "../../../internal/biz/kms/data_keys.js";
import { dataKeyLabel, wrapKey } from "../../../internal/pkg/kms/wrap.js";

// Changes of kms_data_keys as another instance makes them, on any fake that
// keeps its `rows`: the specs decide when this instance hears of them.

/** The fixed root key every fake data key is wrapped under. */
export const ROOT_KEY = Buffer.alloc(32, 7);

interface Rows {
  rows: DataKey[];
}

/** A new key of the next version under ROOT_KEY, random, with `status`. */
function addKey(keys: Rows, status: DataKey["status"]): number {
  const version = Math.max(0, ...keys.rows.map((r) => r.version)) + 1;
  const algorithm = "AES-256-GCM";
  const now = new Date();
  keys.rows.push({
    id: `key-${version}`,
    version,
    algorithm,
    status,
    createdAt: now,
    updatedAt: now,
    expiresAt: null,
    metadata: {},
    encryptionCount: 0n,
    wrapped: wrapKey(ROOT_KEY, randomBytes(32), dataKeyLabel(version, algorithm)),
  });
  return version;
}

/** `keys` with a first active key. */
export function withActiveKey<K extends Rows>(keys: K): K {
  addKey(keys, "active");
  return keys;
}

/** A new active key; the old one inactive. The new version. */
export function rotateKey(keys: Rows): number {
  for (const r of keys.rows) if (r.status === "active") r.status = "inactive";
  return addKey(keys, "active");
}

export function revokeKey(keys: Rows, version: number): void {
  keys.rows.find((r) => r.version === version)!.status = "revoked";
}

export const revokedVersions = (keys: Rows) =>
  new Set(keys.rows.filter((r) => r.status === "revoked").map((r) => r.version));

export const activeVersion = (keys: Rows) => keys.rows.find((r) => r.status === "active")?.version;
