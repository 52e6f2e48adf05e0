import type { Context } from "../../../internal/biz/context.js";
import { actorOf, type AuditEntry } from "../../../internal/biz/kms/audit_chain.js";
import { kmsErrors } from "../../../internal/biz/kms/errors.js";
import type { StoredIndexKeys } from "../../../internal/biz/kms/index_keys.js";
import type { MakeKey, StoredKeys } from "../../../internal/biz/kms/stored_keys.js";
import { AUDIT_KEY_LABEL, dataKeyLabel, INDEX_KEY_LABEL } from "../../../internal/pkg/kms/wrap.js";
import type { FakeDataKeys } from "./data_keys.js";

/**
 * biz.StoredKeys in memory, as internal/data/stored_key_repo.ts behaves:
 * the index and audit keys made once, the root key recorded once. Shares
 * `dataKeys` (when given) for rewrapAll and the root key rotate() wraps under.
 */
export class FakeStoredKeys implements StoredKeys {
  index: StoredIndexKeys | undefined;
  audit: Buffer | undefined;
  /** What each change recorded, oldest first. */
  readonly changes: AuditEntry[] = [];
  private recorded: string | undefined;

  constructor(private readonly dataKeys?: FakeDataKeys) {}

  /** The root key the database is under, as kms_root_key holds it. */
  get root(): string | undefined {
    return this.recorded;
  }

  set root(id: string | undefined) {
    this.recorded = id;
    if (this.dataKeys) this.dataKeys.rootKeyId = id;
  }

  async indexKey(make: MakeKey): Promise<Buffer> {
    this.index ??= { epoch: 1, slot: 0, wrapped: make().wrapped, nextWrapped: undefined };
    return this.index.wrapped;
  }

  async indexKeys(): Promise<StoredIndexKeys | undefined> {
    return this.index && { ...this.index };
  }

  async auditKey(make: MakeKey): Promise<Buffer> {
    this.audit ??= make().wrapped;
    return this.audit;
  }

  async rootKeyId(): Promise<string | undefined> {
    return this.root;
  }

  async recordRootKeyId(id: string): Promise<string> {
    this.root ??= id;
    return this.root;
  }

  async rewrapAll(
    opts: { from: string; to: string; rewrap: (wrapped: Buffer, label: string) => Buffer },
    ctx?: Context,
  ): Promise<{ rotated: boolean; rewrapped: number }> {
    if (this.root === opts.to) return { rotated: false, rewrapped: 0 };
    if (this.root !== opts.from) {
      throw kmsErrors.rootKeyMismatch(
        "the database's keys are not wrapped under kms.previous_root_key: nothing to rotate from",
      );
    }
    // All or nothing, as one transaction: computed first, then written.
    const keys = this.dataKeys?.rows ?? [];
    const data = keys.map((k) => opts.rewrap(k.wrapped, dataKeyLabel(k.version, k.algorithm)));
    const index = this.index && opts.rewrap(this.index.wrapped, INDEX_KEY_LABEL);
    const next = this.index?.nextWrapped && opts.rewrap(this.index.nextWrapped, INDEX_KEY_LABEL);
    const audit = this.audit && opts.rewrap(this.audit, AUDIT_KEY_LABEL);
    keys.forEach((k, i) => (k.wrapped = data[i]!));
    if (this.index) this.index = { ...this.index, wrapped: index!, nextWrapped: next };
    this.audit = audit;
    const rewrapped = data.length + [index, next, audit].filter(Boolean).length;
    this.root = opts.to;
    this.changes.push({
      kind: "root_key_rotated",
      actor: actorOf(ctx),
      details: {
        from_root_key_id: opts.from,
        to_root_key_id: opts.to,
        rewrapped_keys: String(rewrapped),
      },
    });
    return { rotated: true, rewrapped };
  }
}
