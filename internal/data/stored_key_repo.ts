import type pg from "pg";
import type { AuditChain } from "../biz/kms/audit_chain.js";
import { kmsErrors } from "../biz/kms/errors.js";
import type { MakeKey, StoredKeys } from "../biz/kms/stored_keys.js";
import { AUDIT_KEY_LABEL, dataKeyLabel, fingerprint, INDEX_KEY_LABEL } from "../pkg/kms/wrap.js";
import { changeKeys } from "./key_changes.js";

/** The root key the stored keys are under (kms_root_key), in or out of a transaction. */
export async function rootKeyIdIn(client: pg.Pool | pg.PoolClient): Promise<string | undefined> {
  const { rows } = await client.query<{ key_id: string }>(
    "SELECT key_id FROM kms_root_key WHERE id = 1",
  );
  return rows[0]?.key_id;
}

/** biz.StoredKeys on kms_index_keys, kms_audit_key and kms_root_key. */
export function newStoredKeys(pool: pg.Pool, audit: AuditChain): StoredKeys {
  return {
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

    rootKeyId: () => rootKeyIdIn(pool),

    async recordRootKeyId(id) {
      await pool.query(
        "INSERT INTO kms_root_key (id, key_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        [id],
      );
      return (await rootKeyIdIn(pool))!;
    },

    // Under the rotation lock: rotations wrap new keys under the recorded
    // root key, so none runs meanwhile.
    rewrapAll: ({ from, to, rewrap }, ctx) =>
      changeKeys<{ rotated: boolean; rewrapped: number }>(
        pool,
        audit,
        "keyRotation",
        async (c) => {
          const { rows } = await c.query<{ key_id: string }>(
            "SELECT key_id FROM kms_root_key WHERE id = 1 FOR UPDATE",
          );
          const under = rows[0]?.key_id;
          if (under === to) return { result: { rotated: false, rewrapped: 0 } };
          if (under !== from) {
            throw kmsErrors.rootKeyMismatch(
              "the database's keys are not wrapped under kms.previous_root_key: nothing to rotate from",
            );
          }
          const rewrapped = await rewrapEvery(c, rewrap);
          await c.query("UPDATE kms_root_key SET key_id = $1, rotated_at = now() WHERE id = 1", [
            to,
          ]);
          return {
            result: { rotated: true, rewrapped },
            event: {
              kind: "root_key_rotated",
              details: {
                from_root_key_id: from,
                to_root_key_id: to,
                rewrapped_keys: String(rewrapped),
              },
            },
          };
        },
        ctx,
      ),
  };
}

/** Replaces every stored key by `rewrap` of it, rows locked; how many were. */
async function rewrapEvery(
  c: pg.PoolClient,
  rewrap: (wrapped: Buffer, label: string) => Buffer,
): Promise<number> {
  const data = await c.query<{ id: string; version: number; algorithm: string; k: Buffer }>(
    "SELECT id, version, algorithm, encrypted_key AS k FROM kms_data_keys ORDER BY version FOR UPDATE",
  );
  for (const key of data.rows) {
    const wrapped = rewrap(key.k, dataKeyLabel(key.version, key.algorithm));
    await c.query("UPDATE kms_data_keys SET encrypted_key = $2, key_hash = $3 WHERE id = $1", [
      key.id,
      wrapped,
      fingerprint(wrapped),
    ]);
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
  return rewrapped;
}

/**
 * The wrapped key kept in the one row of `table`, created by `make` the first
 * time. Instances starting together race here; the first insert wins and
 * every instance reads the winner.
 */
async function singletonKey(
  pool: pg.Pool,
  table: "kms_index_keys" | "kms_audit_key",
  make: MakeKey,
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
