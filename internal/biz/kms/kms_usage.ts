import type { DataKeyRepo } from "./data_keys.js";

/**
 * Encryptions per key version, counted in memory on the hot path and added
 * to the stored counts in the background (they decide when a key is due).
 */
export interface EncryptionUsage {
  record(version: number): void;
  /** Adds what was counted since the last flush to the repository. */
  flush(repo: Pick<DataKeyRepo, "addEncryptions">): Promise<void>;
}

export function encryptionUsage(): EncryptionUsage {
  let pending = new Map<number, number>();
  return {
    record: (version) => pending.set(version, (pending.get(version) ?? 0) + 1),
    async flush(repo) {
      const counted = pending;
      pending = new Map();
      for (const [version, count] of counted) await repo.addEncryptions(version, count);
    },
  };
}
