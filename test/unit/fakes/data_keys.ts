import type { DataKey, DataKeyRepo } from "../../../internal/biz/kms.js";

/**
 * kms_data_keys in memory, as the keyring and the jobs read it: the rows as
 * given, copies handed out. Changes are made on `rows` (key_rows.ts), as
 * another instance would make them: nobody here is told.
 */
export class FakeDataKeys implements Pick<
  DataKeyRepo,
  "active" | "byVersion" | "list" | "addEncryptions"
> {
  constructor(readonly rows: DataKey[] = []) {}

  async active() {
    return copy(this.rows.find((r) => r.status === "active"));
  }

  async byVersion(version: number) {
    return copy(this.rows.find((r) => r.version === version));
  }

  async list(opts: { limit: number; beforeVersion?: number; status?: DataKey["status"] }) {
    return this.rows
      .filter((r) => opts.beforeVersion === undefined || r.version < opts.beforeVersion)
      .filter((r) => opts.status === undefined || r.status === opts.status)
      .sort((a, b) => b.version - a.version)
      .slice(0, opts.limit)
      .map((r) => copy(r)!);
  }

  async addEncryptions(version: number, n: number) {
    const r = this.rows.find((x) => x.version === version)!;
    r.encryptionCount += BigInt(n);
    return r.encryptionCount;
  }
}

const copy = (r: DataKey | undefined) => r && { ...r, metadata: { ...r.metadata } };
