import { randomBytes } from "node:crypto";
import type { DataKey, DataKeyRepo } from "../../../internal/biz/kms.js";
import { dataKeyLabel, wrapKey } from "../../../internal/pkg/kms/wrap.js";

/** The fixed root key every fake data key is wrapped under. */
export const ROOT_KEY = Buffer.alloc(32, 7);
const ALGORITHM = "AES-256-GCM";

/**
 * kms_data_keys in memory, as the keyring and the jobs read it (active,
 * byVersion, list); `rotate` and `revoke` change it as the KMS would,
 * without telling anyone (tests decide when a cache hears of it).
 */
export function fakeDataKeys() {
  const rows: DataKey[] = [];
  const add = (status: DataKey["status"]) => {
    const version = rows.length + 1;
    const now = new Date();
    rows.push({
      id: `key-${version}`,
      version,
      algorithm: ALGORITHM,
      status,
      createdAt: now,
      updatedAt: now,
      expiresAt: null,
      metadata: {},
      encryptionCount: 0n,
      wrapped: wrapKey(ROOT_KEY, randomBytes(32), dataKeyLabel(version, ALGORITHM)),
    });
    return version;
  };
  add("active");
  const repo: Pick<DataKeyRepo, "active" | "byVersion" | "list" | "addEncryptions"> = {
    active: async () => rows.find((r) => r.status === "active"),
    byVersion: async (version) => rows.find((r) => r.version === version),
    list: async ({ limit, beforeVersion, status }) =>
      rows
        .filter((r) => beforeVersion === undefined || r.version < beforeVersion)
        .filter((r) => status === undefined || r.status === status)
        .sort((a, b) => b.version - a.version)
        .slice(0, limit),
    addEncryptions: async (version, n) => {
      const r = rows.find((x) => x.version === version)!;
      r.encryptionCount += BigInt(n);
      return r.encryptionCount;
    },
  };
  return {
    repo,
    rows,
    /** A new active key; the old one inactive. Its version. */
    rotate() {
      for (const r of rows) if (r.status === "active") r.status = "inactive";
      return add("active");
    },
    revoke(version: number) {
      rows.find((r) => r.version === version)!.status = "revoked";
    },
    revoked: () => new Set(rows.filter((r) => r.status === "revoked").map((r) => r.version)),
    activeVersion: () => rows.find((r) => r.status === "active")?.version,
  };
}

export type FakeDataKeys = ReturnType<typeof fakeDataKeys>;
