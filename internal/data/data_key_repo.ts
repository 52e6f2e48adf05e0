import type pg from "pg";
import type { AuditChain } from "../biz/kms/audit_chain.js";
import type {
  DataKey,
  DataKeyRepo,
  KeyStats,
  KeyStatus,
  NewDataKey,
  Rotation,
} from "../biz/kms/data_keys.js";
import { isPosition } from "../biz/paging.js";
import { changeKeys } from "./key_changes.js";
import { rootKeyIdIn } from "./stored_key_repo.js";

const COLUMNS = `id, version, algorithm, status, created_at, updated_at, expires_at,
  coalesce(metadata, '{}'::jsonb) AS metadata, encryption_count, encrypted_key`;

interface Row {
  id: string;
  version: number;
  algorithm: string;
  status: KeyStatus;
  created_at: Date;
  updated_at: Date;
  expires_at: Date | null;
  metadata: Record<string, unknown>;
  encryption_count: string;
  encrypted_key: Buffer;
}

const toKey = (r: Row): DataKey => ({
  id: r.id,
  version: r.version,
  algorithm: r.algorithm,
  status: r.status,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  expiresAt: r.expires_at,
  metadata: r.metadata,
  encryptionCount: BigInt(r.encryption_count),
  wrapped: r.encrypted_key,
});

/** biz.DataKeyRepo on kms_data_keys; each change goes through changeKeys (key_changes.ts). */
export function newDataKeyRepo(pool: pg.Pool, audit: AuditChain): DataKeyRepo {
  const one = async (sql: string, params: unknown[] = []) => {
    const { rows } = await pool.query<Row>(sql, params);
    return rows[0] ? toKey(rows[0]) : undefined;
  };

  return {
    active: () => one(`SELECT ${COLUMNS} FROM kms_data_keys WHERE status = 'active'`),
    byVersion: async (version) =>
      isPosition(version)
        ? one(`SELECT ${COLUMNS} FROM kms_data_keys WHERE version = $1`, [version])
        : undefined,

    async list({ limit, beforeVersion, status }) {
      const { rows } = await pool.query<Row>(
        `SELECT ${COLUMNS} FROM kms_data_keys
          WHERE ($1::int IS NULL OR version < $1) AND ($2::text IS NULL OR status = $2)
          ORDER BY version DESC LIMIT $3`,
        [beforeVersion ?? null, status ?? null, limit],
      );
      return rows.map(toKey);
    },

    rotate: (make, onlyIf, ctx) =>
      changeKeys<Rotation>(
        pool,
        audit,
        "keyRotation",
        async (c) => {
          const found = await c.query<Row>(
            `SELECT ${COLUMNS} FROM kms_data_keys WHERE status = 'active' FOR UPDATE`,
          );
          const previous = found.rows[0] ? toKey(found.rows[0]) : undefined;
          if (onlyIf && !onlyIf(previous))
            return { result: { key: previous!, previous: undefined, rotated: false } };
          const next = await c.query<{ v: number }>(
            "SELECT coalesce(max(version), 0) + 1 AS v FROM kms_data_keys",
          );
          const version = next.rows[0]!.v;
          const fresh: NewDataKey = make(version, await rootKeyIdIn(c));
          if (previous)
            await c.query("UPDATE kms_data_keys SET status = 'inactive' WHERE id = $1", [
              previous.id,
            ]);
          const inserted = await c.query<Row>(
            `INSERT INTO kms_data_keys (id, version, algorithm, encrypted_key, key_hash, status, expires_at, metadata)
             VALUES (gen_random_uuid()::text, $1, $2, $3, $4, 'active', $5, $6) RETURNING ${COLUMNS}`,
            [
              version,
              fresh.algorithm,
              fresh.wrapped,
              fresh.keyHash,
              fresh.expiresAt,
              fresh.metadata,
            ],
          );
          return {
            result: { key: toKey(inserted.rows[0]!), previous, rotated: true },
            event: {
              kind: previous ? "key_rotated" : "key_generated",
              details: {
                version: String(version),
                ...(previous && { previous_version: String(previous.version) }),
                reason: String(fresh.metadata.reason ?? ""),
              },
            },
          };
        },
        ctx,
      ),

    revoke: async (version, reason, ctx) =>
      !isPosition(version)
        ? undefined
        : changeKeys(
            pool,
            audit,
            "revocation",
            async (c) => {
              const { rows } = await c.query<Row>(
                `UPDATE kms_data_keys SET status = 'revoked',
                   metadata = coalesce(metadata, '{}'::jsonb) || jsonb_build_object('revoked_reason', $2::text, 'revoked_at', now())
                 WHERE version = $1 AND status <> 'active' RETURNING ${COLUMNS}`,
                [version, reason],
              );
              if (!rows[0]) return { result: undefined };
              return {
                result: toKey(rows[0]),
                event: { kind: "key_revoked", details: { version: String(version), reason } },
              };
            },
            ctx,
          ),

    // Under the rotation lock: rows locked in the order a root-key rotation
    // locks them, so never a deadlock.
    expireDue: () =>
      changeKeys(pool, audit, "keyRotation", async (c) => {
        const { rows } = await c.query<{ version: number }>(
          `UPDATE kms_data_keys SET status = 'expired'
            WHERE status = 'inactive' AND expires_at IS NOT NULL AND expires_at <= now() RETURNING version`,
        );
        const versions = rows.map((r) => r.version).sort((a, b) => a - b);
        if (versions.length === 0) return { result: versions };
        return {
          result: versions,
          event: { kind: "key_expired", details: { versions: versions.join(",") } },
        };
      }),

    async addEncryptions(version, count) {
      const { rows } = await pool.query<{ n: string }>(
        "UPDATE kms_data_keys SET encryption_count = encryption_count + $2 WHERE version = $1 RETURNING encryption_count AS n",
        [version, count],
      );
      return BigInt(rows[0]?.n ?? 0);
    },

    async stats(): Promise<KeyStats[]> {
      const { rows } = await pool.query<{
        status: KeyStatus;
        algorithm: string;
        key_count: string;
        earliest_created: Date;
        latest_created: Date;
        expired_count: string;
      }>("SELECT * FROM kms_key_stats ORDER BY status, algorithm");
      return rows.map((r) => ({
        status: r.status,
        algorithm: r.algorithm,
        keyCount: Number(r.key_count),
        earliestCreated: r.earliest_created,
        latestCreated: r.latest_created,
        expiredCount: Number(r.expired_count),
      }));
    },
  };
}
