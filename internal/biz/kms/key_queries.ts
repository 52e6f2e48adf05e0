import type { Algorithm } from "../../pkg/kms/aead.js";
import { MAX_POSITION, paging, type PageTokens } from "../paging.js";
import type { DataKey, DataKeyRepo, KeyStats, KeyStatus, ProtectedValues } from "./data_keys.js";
import { kmsErrors } from "./errors.js";
import type { StoredKeys } from "./stored_keys.js";

export interface KeyStatusReport {
  active: DataKey | undefined;
  stats: KeyStats[];
  usage: Map<number, bigint>;
  /** Inactive and expired keys no stored value uses, ascending. */
  unreferenced: number[];
  algorithm: Algorithm;
  rotateIntervalMs: number;
  /** The id of the root key the stored keys are wrapped under. */
  rootKeyId: string | undefined;
}

/** What the KMS tells of its keys: one key, a page of them, and the state of all. */
export class KeyQueries {
  constructor(
    private readonly repo: DataKeyRepo,
    private readonly stored: Pick<StoredKeys, "rootKeyId">,
    /** Where encrypted values live, for the usage counts of GetStatus. */
    private readonly stores: ProtectedValues[],
    /** The policy as GetStatus reports it. */
    private readonly policy: { algorithm: Algorithm; rotateIntervalMs: number },
  ) {}

  async getKey(version: number): Promise<DataKey> {
    const key = await this.repo.byVersion(version);
    if (!key) throw kmsErrors.keyNotFound(version);
    return key;
  }

  async status(): Promise<KeyStatusReport> {
    const [active, stats, counts, keys, rootKeyId] = await Promise.all([
      this.repo.active(),
      this.repo.stats(),
      Promise.all(this.stores.map((s) => s.countByKeyVersion())),
      this.repo.list({ limit: MAX_POSITION }),
      this.stored.rootKeyId(),
    ]);
    const usage = new Map<number, bigint>();
    for (const count of counts) {
      for (const [version, n] of count) usage.set(version, (usage.get(version) ?? 0n) + n);
    }
    const unreferenced = keys
      .filter((k) => (k.status === "inactive" || k.status === "expired") && !usage.has(k.version))
      .map((k) => k.version)
      .sort((a, b) => a - b);
    return {
      active,
      stats,
      usage,
      unreferenced,
      algorithm: this.policy.algorithm,
      rotateIntervalMs: this.policy.rotateIntervalMs,
      rootKeyId,
    };
  }

  /** Newest first, a page at a time; tokens bind each page to its status filter. */
  async listKeys(
    request: { pageSize: number; pageToken: string; status?: KeyStatus },
    tokens: PageTokens,
  ): Promise<{ keys: DataKey[]; nextPageToken: string }> {
    const pages = paging(tokens, request, `keys:${request.status ?? ""}`);
    if (!pages) throw kmsErrors.invalidPageToken();
    const found = await this.repo.list({
      limit: pages.fetch,
      beforeVersion: pages.from,
      status: request.status,
    });
    const { page, nextPageToken } = pages.finish(found, (k) => k.version);
    return { keys: page, nextPageToken };
  }
}
