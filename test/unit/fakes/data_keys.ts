import type { Context } from "../../../internal/biz/context.js";
import { actorOf, type AuditEntry } from "../../../internal/biz/kms/audit_chain.js";
import type {
  DataKey,
  DataKeyRepo,
  KeyStats,
  KeyStatus,
  NewDataKey,
  Rotation,
} from "../../../internal/biz/kms/data_keys.js";

/**
 * biz.DataKeyRepo in memory, as internal/data/data_key_repo.ts behaves on
 * PostgreSQL: one change at a time (each method's change is synchronous
 * once it runs, as the rotation lock makes it), copies handed out, and what
 * each change would record in the audit trail kept in `changes`.
 * `hold()` makes every read wait until `release()`.
 */
export class FakeDataKeys implements DataKeyRepo {
  readonly rows: DataKey[];
  readonly reads = { active: 0, byVersion: 0 };
  /** What each change recorded, oldest first. */
  readonly changes: AuditEntry[] = [];
  /** The root key the database is under (kms_root_key), handed to rotate's `make`. */
  rootKeyId: string | undefined;
  private gate: { promise: Promise<void>; open: () => void } | undefined;

  constructor(rows: DataKey[] = []) {
    this.rows = rows;
  }

  hold(): void {
    let open!: () => void;
    this.gate = { promise: new Promise<void>((r) => (open = r)), open };
  }

  release(): void {
    this.gate?.open();
    this.gate = undefined;
  }

  /** The stored row of `version` (not a copy): to alter, as an attacker or a test would. */
  row(version: number): DataKey {
    const found = this.rows.find((r) => r.version === version);
    if (!found) throw new Error(`no row for version ${version}`);
    return found;
  }

  async active(): Promise<DataKey | undefined> {
    this.reads.active++;
    await this.gate?.promise;
    return copy(this.rows.find((r) => r.status === "active"));
  }

  async byVersion(version: number): Promise<DataKey | undefined> {
    this.reads.byVersion++;
    await this.gate?.promise;
    return copy(this.rows.find((r) => r.version === version));
  }

  async list(opts: { limit: number; beforeVersion?: number; status?: KeyStatus }) {
    return this.rows
      .filter((r) => opts.beforeVersion === undefined || r.version < opts.beforeVersion)
      .filter((r) => opts.status === undefined || r.status === opts.status)
      .sort((a, b) => b.version - a.version)
      .slice(0, opts.limit)
      .map((r) => copy(r)!);
  }

  async rotate(
    make: (version: number, rootKeyId: string | undefined) => NewDataKey,
    onlyIf?: (active: DataKey | undefined) => boolean,
    ctx?: Context,
  ): Promise<Rotation> {
    const current = this.rows.find((r) => r.status === "active");
    const previous = copy(current);
    if (onlyIf && !onlyIf(previous)) return { key: previous!, previous: undefined, rotated: false };
    const version = Math.max(0, ...this.rows.map((r) => r.version)) + 1;
    const fresh = make(version, this.rootKeyId);
    if (current) current.status = "inactive";
    const now = new Date();
    const key: DataKey = {
      id: `key-${version}`,
      version,
      algorithm: fresh.algorithm,
      status: "active",
      createdAt: now,
      updatedAt: now,
      expiresAt: fresh.expiresAt,
      metadata: fresh.metadata,
      encryptionCount: 0n,
      wrapped: fresh.wrapped,
    };
    this.rows.push(key);
    this.changes.push({
      kind: previous ? "key_rotated" : "key_generated",
      actor: actorOf(ctx),
      details: {
        version: String(version),
        ...(previous && { previous_version: String(previous.version) }),
        reason: String(fresh.metadata.reason ?? ""),
      },
    });
    return { key: copy(key)!, previous, rotated: true };
  }

  async revoke(version: number, reason: string, ctx?: Context): Promise<DataKey | undefined> {
    const found = this.rows.find((r) => r.version === version && r.status !== "active");
    if (!found) return undefined;
    found.status = "revoked";
    found.metadata = { ...found.metadata, revoked_reason: reason };
    this.changes.push({
      kind: "key_revoked",
      actor: actorOf(ctx),
      details: { version: String(version), reason },
    });
    return copy(found);
  }

  async expireDue(): Promise<number[]> {
    const now = Date.now();
    const due = this.rows.filter(
      (r) => r.status === "inactive" && r.expiresAt !== null && r.expiresAt.getTime() <= now,
    );
    for (const r of due) r.status = "expired";
    const versions = due.map((r) => r.version).sort((a, b) => a - b);
    if (versions.length > 0) {
      this.changes.push({
        kind: "key_expired",
        actor: actorOf(),
        details: { versions: versions.join(",") },
      });
    }
    return versions;
  }

  async addEncryptions(version: number, count: number): Promise<bigint> {
    const found = this.rows.find((r) => r.version === version);
    if (!found) return 0n;
    found.encryptionCount += BigInt(count);
    return found.encryptionCount;
  }

  async stats(): Promise<KeyStats[]> {
    const groups = new Map<string, DataKey[]>();
    for (const r of this.rows) {
      const k = `${r.status}/${r.algorithm}`;
      groups.set(k, [...(groups.get(k) ?? []), r]);
    }
    return [...groups.values()].map((keys) => {
      const created = keys.map((k) => k.createdAt.getTime());
      return {
        status: keys[0]!.status,
        algorithm: keys[0]!.algorithm,
        keyCount: keys.length,
        earliestCreated: new Date(Math.min(...created)),
        latestCreated: new Date(Math.max(...created)),
        expiredCount: keys.filter(
          (k) => k.expiresAt !== null && k.expiresAt.getTime() <= Date.now(),
        ).length,
      };
    });
  }
}

const copy = (k: DataKey | undefined): DataKey | undefined =>
  k && { ...k, metadata: { ...k.metadata } };
