import type { Context } from "../biz/context.js";
import pg from "pg";
import {
  kmsErrors,
  type DataKey,
  type DataKeyRepo,
  type KeyStats,
  type KeyStatus,
  type NewDataKey,
} from "../biz/kms/kms.js";
import { AUDIT_KEY_LABEL, dataKeyLabel, fingerprint, INDEX_KEY_LABEL } from "../pkg/kms/wrap.js";
import type { Logger } from "../pkg/log/logger.js";
import { isPosition } from "../biz/paging.js";
import { withTx } from "./tx.js";
import { actorOf, SYSTEM_ACTOR, type AuditChain } from "../biz/kms/audit.js";
import { appendAudit } from "./audit_repo.js";

/** The channel every instance LISTENs on for key changes. */
export const CHANNEL = "kms_keys";
/** Serialises rotations across instances (transaction-scoped advisory lock). */
export const ROTATE_LOCK = 0x6b6d7301;
/**
 * Taken exclusively by a revocation; migration 000008's trigger takes it
 * shared for each users write, so the two are ordered (see there).
 */
export const REVOKE_LOCK = 0x6b6d7302;

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

/**
 * biz.DataKeyRepo on kms_data_keys, kms_index_keys and kms_audit_key; every
 * key change appends its audit event in its own transaction.
 */
export function newDataKeyRepo(
  pool: pg.Pool,
  databaseUrl: string,
  audit: AuditChain,
  log: Logger,
): DataKeyRepo {
  const one = async (sql: string, params: unknown[] = []) => {
    const { rows } = await pool.query<Row>(sql, params);
    return rows[0] ? toKey(rows[0]) : undefined;
  };
  const tx = <T>(fn: (c: pg.PoolClient) => Promise<T>, ctx?: Context) => withTx(pool, fn, ctx);

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
      tx(async (c) => {
        await c.query("SELECT pg_advisory_xact_lock($1)", [ROTATE_LOCK]);
        const found = await c.query<Row>(
          `SELECT ${COLUMNS} FROM kms_data_keys WHERE status = 'active' FOR UPDATE`,
        );
        const previous = found.rows[0] ? toKey(found.rows[0]) : undefined;
        if (onlyIf && !onlyIf(previous))
          return { key: previous!, previous: undefined, rotated: false };
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
          [version, fresh.algorithm, fresh.wrapped, fresh.keyHash, fresh.expiresAt, fresh.metadata],
        );
        await appendAudit(c, audit, {
          kind: previous ? "key_rotated" : "key_generated",
          actor: actorOf(ctx),
          details: {
            version: String(version),
            ...(previous && { previous_version: String(previous.version) }),
            reason: String(fresh.metadata.reason ?? ""),
          },
        });
        await c.query("SELECT pg_notify($1, $2)", [CHANNEL, `rotated:${version}`]);
        return { key: toKey(inserted.rows[0]!), previous, rotated: true };
      }, ctx),

    revoke: async (version, reason, ctx) =>
      !isPosition(version)
        ? undefined
        : tx(async (c) => {
            await c.query("SELECT pg_advisory_xact_lock($1)", [REVOKE_LOCK]);
            const { rows } = await c.query<Row>(
              `UPDATE kms_data_keys SET status = 'revoked',
             metadata = coalesce(metadata, '{}'::jsonb) || jsonb_build_object('revoked_reason', $2::text, 'revoked_at', now())
           WHERE version = $1 AND status <> 'active' RETURNING ${COLUMNS}`,
              [version, reason],
            );
            if (!rows[0]) return undefined;
            await appendAudit(c, audit, {
              kind: "key_revoked",
              actor: actorOf(ctx),
              details: { version: String(version), reason },
            });
            await c.query("SELECT pg_notify($1, $2)", [CHANNEL, `revoked:${version}`]);
            return toKey(rows[0]);
          }, ctx),

    expireDue: () =>
      tx(async (c) => {
        // Rows locked in the order a root-key rotation locks them: never a deadlock.
        await c.query("SELECT pg_advisory_xact_lock($1)", [ROTATE_LOCK]);
        const { rows } = await c.query<{ version: number }>(
          `UPDATE kms_data_keys SET status = 'expired'
            WHERE status = 'inactive' AND expires_at IS NOT NULL AND expires_at <= now() RETURNING version`,
        );
        const versions = rows.map((r) => r.version).sort((a, b) => a - b);
        if (versions.length > 0) {
          await appendAudit(c, audit, {
            kind: "key_expired",
            actor: SYSTEM_ACTOR,
            details: { versions: versions.join(",") },
          });
          await c.query("SELECT pg_notify($1, 'expired')", [CHANNEL]);
        }
        return versions;
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

    rootKeyId: () => rootKeyIdIn(pool),

    async recordRootKeyId(id) {
      await pool.query(
        "INSERT INTO kms_root_key (id, key_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        [id],
      );
      return (await rootKeyIdIn(pool))!;
    },

    rewrapAll: ({ from, to, rewrap }, ctx) =>
      tx(async (c) => {
        // Rotations wrap new keys under the recorded root key: none runs meanwhile.
        await c.query("SELECT pg_advisory_xact_lock($1)", [ROTATE_LOCK]);
        const { rows } = await c.query<{ key_id: string }>(
          "SELECT key_id FROM kms_root_key WHERE id = 1 FOR UPDATE",
        );
        const under = rows[0]?.key_id;
        if (under === to) return { rotated: false, rewrapped: 0 };
        if (under !== from) {
          throw kmsErrors.rootKeyMismatch(
            "the database's keys are not wrapped under kms.previous_root_key: nothing to rotate from",
          );
        }
        const data = await c.query<{ id: string; version: number; algorithm: string; k: Buffer }>(
          "SELECT id, version, algorithm, encrypted_key AS k FROM kms_data_keys ORDER BY version FOR UPDATE",
        );
        for (const key of data.rows) {
          const wrapped = rewrap(key.k, dataKeyLabel(key.version, key.algorithm));
          await c.query(
            "UPDATE kms_data_keys SET encrypted_key = $2, key_hash = $3 WHERE id = $1",
            [key.id, wrapped, fingerprint(wrapped)],
          );
        }
        let rewrapped = data.rows.length;
        // The index key, a rotation's next index key, the audit key.
        for (const [table, column, hash, label] of [
          ["kms_index_keys", "encrypted_key", "key_hash", INDEX_KEY_LABEL],
          ["kms_index_keys", "next_encrypted_key", "next_key_hash", INDEX_KEY_LABEL],
          ["kms_audit_key", "encrypted_key", "key_hash", AUDIT_KEY_LABEL],
        ] as const) {
          const found = await c.query<{ k: Buffer | null }>(
            `SELECT ${column} AS k FROM ${table} WHERE id = 1 FOR UPDATE`,
          );
          if (!found.rows[0]?.k) continue;
          const wrapped = rewrap(found.rows[0].k, label);
          await c.query(`UPDATE ${table} SET ${column} = $1, ${hash} = $2 WHERE id = 1`, [
            wrapped,
            fingerprint(wrapped),
          ]);
          rewrapped++;
        }
        await c.query("UPDATE kms_root_key SET key_id = $1, rotated_at = now() WHERE id = 1", [to]);
        await appendAudit(c, audit, {
          kind: "root_key_rotated",
          actor: actorOf(ctx),
          details: {
            from_root_key_id: from,
            to_root_key_id: to,
            rewrapped_keys: String(rewrapped),
          },
        });
        await c.query("SELECT pg_notify($1, 'root')", [CHANNEL]);
        return { rotated: true, rewrapped };
      }, ctx),

    indexKey: (make) => singletonKey(pool, "kms_index_keys", make),
    async indexKeys() {
      const { rows } = await pool.query<{
        epoch: number;
        slot: number;
        k: Buffer;
        next: Buffer | null;
      }>(
        "SELECT epoch, slot, encrypted_key AS k, next_encrypted_key AS next FROM kms_index_keys WHERE id = 1",
      );
      const r = rows[0];
      return (
        r && {
          epoch: r.epoch,
          slot: r.slot === 1 ? 1 : 0,
          wrapped: r.k,
          nextWrapped: r.next ?? undefined,
        }
      );
    },
    auditKey: (make) => singletonKey(pool, "kms_audit_key", make),

    watch: (onChange) => listen(databaseUrl, onChange, log),
  };
}

async function rootKeyIdIn(client: pg.Pool | pg.PoolClient): Promise<string | undefined> {
  const { rows } = await client.query<{ key_id: string }>(
    "SELECT key_id FROM kms_root_key WHERE id = 1",
  );
  return rows[0]?.key_id;
}

/**
 * The wrapped key kept in the one row of `table`, created by `make` the first
 * time. Instances starting together race here; the first insert wins and
 * every instance reads the winner.
 */
async function singletonKey(
  pool: pg.Pool,
  table: "kms_index_keys" | "kms_audit_key",
  make: () => { wrapped: Buffer; keyHash: string },
): Promise<Buffer> {
  const read = async () =>
    (await pool.query<{ k: Buffer }>(`SELECT encrypted_key AS k FROM ${table} WHERE id = 1`))
      .rows[0]?.k;
  const found = await read();
  if (found) return found;
  const fresh = make();
  await pool.query(
    `INSERT INTO ${table} (id, encrypted_key, key_hash) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING`,
    [fresh.wrapped, fresh.keyHash],
  );
  return (await read())!;
}

// While the database stays down, attempts (and their warnings) space out
// rather than filling the log every second: 1 s, doubling up to 30 s.
const RETRY_MS = [1000, 2000, 4000, 8000, 16_000, 30_000];

/**
 * LISTENs on a dedicated connection and calls `onChange` per notification.
 * When the connection drops it reconnects (and calls `onChange`, as changes may
 * have been missed); the cache lifetime bounds staleness meanwhile.
 */
async function listen(
  databaseUrl: string,
  onChange: () => void,
  log: Logger,
): Promise<() => Promise<void>> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  let failures = 0;
  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: databaseUrl, application_name: "kms-listener" });
    c.on("notification", () => onChange());
    c.on("error", (err) => {
      c.end().catch(() => undefined);
      const retryInMs = schedule();
      if (retryInMs !== undefined)
        log.warn(
          { err: { message: err.message }, retryInMs },
          "kms listener lost its connection; reconnecting",
        );
    });
    await c.connect();
    await c.query(`LISTEN ${CHANNEL}`);
    client = c;
  };
  // The delay before the next attempt, or undefined when none is scheduled.
  const schedule = (): number | undefined => {
    if (stopped || retry) return undefined;
    client = undefined;
    const delay = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)]!;
    retry = setTimeout(() => {
      retry = undefined;
      connect().then(
        () => {
          if (failures > 1) log.info({ attempts: failures }, "kms listener reconnected");
          failures = 0;
          onChange();
        },
        (err: Error) => {
          const retryInMs = schedule();
          if (retryInMs !== undefined)
            log.warn(
              { err: { message: err.message }, retryInMs },
              "kms listener could not reconnect; retrying",
            );
        },
      );
    }, delay);
    failures++;
    return delay;
  };
  await connect();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    await client?.end().catch(() => undefined);
  };
}
