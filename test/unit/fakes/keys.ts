import { randomBytes } from "node:crypto";
import type { DataKey, KeyPolicy, KeyStatus } from "../../../internal/biz/kms/data_keys.js";
import { dataKeyLabel, wrapKey } from "../../../internal/pkg/kms/wrap.js";
import { createLogger } from "../../../internal/pkg/log/logger.js";

/** A key policy for specs: keys last an hour, or a thousand encryptions. */
export const TEST_POLICY: KeyPolicy = {
  algorithm: "AES-256-GCM",
  rotateIntervalMs: 3600_000,
  maxEncryptionsPerKey: 1000,
};

export const silentLog = createLogger({ level: "silent", format: "json" });

/** A stored data key row of `version`, its key random and wrapped under `rootKey`. */
export function dataKeyRow(
  rootKey: Buffer,
  version: number,
  status: KeyStatus,
  more: Partial<DataKey> = {},
): DataKey {
  const algorithm = more.algorithm ?? "AES-256-GCM";
  return {
    id: `key-${version}`,
    version,
    algorithm,
    status,
    createdAt: new Date(),
    updatedAt: new Date(),
    expiresAt: null,
    metadata: {},
    encryptionCount: 0n,
    wrapped: wrapKey(rootKey, randomBytes(32), dataKeyLabel(version, algorithm)),
    ...more,
  };
}
