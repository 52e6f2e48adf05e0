import type pg from "pg";
import type { Slot } from "../biz/kms/index_keys.js";
import {
  IndexCollisionError,
  otherSlot as other,
  type IndexFill,
  type RowMove,
  type RowToIndex,
  type RowToMove,
  type SealedWrites,
} from "../biz/sealed_store.js";
import { PII_FIELDS, USER_LAYOUT, type PiiField } from "../biz/user.js";
import { ADVISORY_LOCKS } from "./advisory_locks.js";
import { indexColumn, keyVersionsSet, ROTATION_INDEXES, writeRefusal } from "./user_schema.js";

type Db = pg.Pool | pg.PoolClient;

/** Rows holding an index in `from` that the other slot lacks. */
const lacking = (from: Slot) =>
  PII_FIELDS.map(
    (f) => `(${indexColumn(f, from)} IS NOT NULL AND ${indexColumn(f, other(from))} IS NULL)`,
  ).join(" OR ");
const holding = (slot: Slot) =>
  PII_FIELDS.map((f) => `${indexColumn(f, slot)} IS NOT NULL`).join(" OR ");

const count = async (db: Db, sql: string, params: unknown[]) => {
  const { rows } = await db.query<{ n: string }>(sql, params);
  return BigInt(rows[0]!.n);
};

// Per field: the value read, its replacement and the replacement's version;
// NULLs where the row's field does not move.
const MOVE_COLUMNS = PII_FIELDS.flatMap((f) => [`${f}_old`, `${f}_new`, `${f}_version`]);
const MOVE_TYPES = PII_FIELDS.flatMap(() => ["bytea[]", "bytea[]", "int[]"]);

/**
 * biz.SealedWrites on the users table, over `db`: the pool for the jobs'
 * reads, a job's transaction for its batch (with the job's cursor).
 */
export function newUserStore(db: Db): SealedWrites {
  return {
    layout: USER_LAYOUT,

    async countByKeyVersion() {
      const { rows } = await db.query<{ version: number; n: string }>(
        "SELECT v AS version, count(*) AS n FROM users, unnest(key_versions) AS v GROUP BY v",
      );
      return new Map(rows.map((r) => [r.version, BigInt(r.n)]));
    },

    async rowsUnder(versions, afterId, limit) {
      const { rows } = await db.query<Record<string, unknown> & { id: number }>(
        `SELECT id, email_encrypted, email_key_version, phone_encrypted, phone_key_version,
                name_encrypted, name_key_version
           FROM users WHERE id > $1 AND key_versions && $2::int[] ORDER BY id LIMIT $3`,
        [afterId, versions, limit],
      );
      return rows.map((r) => {
        const fields: RowToMove["fields"] = {};
        for (const f of PII_FIELDS) {
          const ciphertext = r[`${f}_encrypted`] as Buffer | null;
          if (ciphertext) fields[f] = { ciphertext, keyVersion: r[`${f}_key_version`] as number };
        }
        return { id: r.id, fields };
      });
    },

    countUnder: (versions, afterId) =>
      count(db, "SELECT count(*) AS n FROM users WHERE id > $1 AND key_versions && $2::int[]", [
        afterId,
        versions,
      ]),

    async unindexed(from, afterId, limit) {
      const { rows } = await db.query<Record<string, unknown> & { id: number }>(
        `SELECT id, ${PII_FIELDS.map((f) => `${f}_encrypted, ${indexColumn(f, from)} AS ${f}_old, ${indexColumn(f, other(from))} AS ${f}_new`).join(", ")}
           FROM users WHERE id > $1 AND (${lacking(from)}) ORDER BY id LIMIT $2`,
        [afterId, limit],
      );
      return rows.map((r) => {
        const fields: RowToIndex["fields"] = {};
        for (const f of PII_FIELDS) {
          const ciphertext = r[`${f}_encrypted`] as Buffer | null;
          const oldHash = r[`${f}_old`] as string | null;
          if (ciphertext && oldHash && r[`${f}_new`] === null) fields[f] = { ciphertext, oldHash };
        }
        return { id: r.id, fields };
      });
    },

    countUnindexed: (from, afterId) =>
      count(db, `SELECT count(*) AS n FROM users WHERE id > $1 AND (${lacking(from)})`, [afterId]),

    countIndexed: (slot, afterId) =>
      count(db, `SELECT count(*) AS n FROM users WHERE id > $1 AND (${holding(slot)})`, [afterId]),

    move: (moves) => move(db, moves),
    fill: (to, epoch, fills) => fill(db, to, epoch, fills),

    async clear(from, epoch, afterId, limit) {
      const { rows } = await db.query<{ id: number }>(
        `WITH batch AS (
           SELECT id FROM users WHERE id > $1 AND (${holding(from)}) ORDER BY id LIMIT $2 FOR UPDATE)
         UPDATE users AS u SET ${PII_FIELDS.map((f) => `${indexColumn(f, from)} = NULL`).join(", ")},
           index_epoch = $3
           FROM batch WHERE u.id = batch.id RETURNING u.id`,
        [afterId, limit, epoch],
      );
      return rows.map((r) => r.id);
    },

    // An interrupted CONCURRENTLY build leaves an INVALID index that enforces
    // nothing: uniqueness under the new key would silently be off.
    async missingIndexes() {
      const { rows } = await db.query<{ name: string }>(
        `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE c.relname = ANY ($1) AND i.indisvalid AND i.indrelid = 'users'::regclass`,
        [ROTATION_INDEXES],
      );
      const valid = new Set(rows.map((r) => r.name));
      return ROTATION_INDEXES.filter((n) => !valid.has(n));
    },
  };
}

/**
 * One statement for a whole batch. Compare-and-set per field: a field a
 * user changed since it was read keeps the user's value (its comparison
 * fails, or is NULL where the field does not move), and the row's other
 * fields still move. Returns the rows changed.
 */
async function move(db: Db, all: RowMove[]): Promise<number> {
  const moves = all.filter((m) => PII_FIELDS.some((f) => m.fields[f]));
  if (moves.length === 0) return 0;
  // A value read before its key was revoked must stay unreadable: ordered
  // against revocations as every users write is (migration 000008), and
  // never moved from a version revoked by now.
  await db.query("SELECT pg_advisory_xact_lock_shared($1)", [ADVISORY_LOCKS.revocation]);
  const { rows } = await db.query<{ v: number[] | null }>(
    "SELECT array_agg(version) AS v FROM kms_data_keys WHERE status = 'revoked'",
  );
  const revoked = `$${MOVE_COLUMNS.length + 2}::int[]`;
  const still = (f: string) =>
    `(u.${f}_encrypted = m.${f}_old AND u.${f}_key_version <> ALL (${revoked}))`;
  const sets = PII_FIELDS.flatMap((f) => [
    `${f}_encrypted = CASE WHEN ${still(f)} THEN m.${f}_new ELSE u.${f}_encrypted END`,
    `${f}_key_version = CASE WHEN ${still(f)} THEN m.${f}_version ELSE u.${f}_key_version END`,
  ]);
  // In SET, columns name the row before the update: the versions gathered
  // are those the fields end with.
  sets.push(
    keyVersionsSet(
      PII_FIELDS.map(
        (f) => `CASE WHEN ${still(f)} THEN m.${f}_version ELSE u.${f}_key_version END`,
      ),
    ),
  );
  const params: unknown[] = [moves.map((m) => m.id)];
  for (const f of PII_FIELDS) {
    params.push(
      moves.map((m) => m.fields[f]?.old ?? null),
      moves.map((m) => m.fields[f]?.ciphertext ?? null),
      moves.map((m) => m.fields[f]?.keyVersion ?? null),
    );
  }
  params.push(rows[0]?.v ?? []);
  const unnest = ["int[]", ...MOVE_TYPES].map((t, i) => `$${i + 1}::${t}`).join(", ");
  const { rowCount } = await db
    .query(
      `UPDATE users AS u SET ${sets.join(", ")}
         FROM unnest(${unnest}) AS m(id, ${MOVE_COLUMNS.join(", ")})
        WHERE u.id = m.id AND (${PII_FIELDS.map(still).join(" OR ")})`,
      params,
    )
    .catch((err: unknown) => {
      throw writeRefusal(err);
    });
  return rowCount ?? 0;
}

/** Per field, compare-and-set: a row whose old index changed (a user's write, which filled both columns itself) keeps its values. */
async function fill(db: Db, to: Slot, epoch: number, all: IndexFill[]): Promise<number> {
  const fills = all.filter((x) => Object.keys(x.fields).length > 0);
  if (fills.length === 0) return 0;
  const from = other(to);
  const still = (f: PiiField) =>
    `(u.${indexColumn(f, from)} = m.${f}_old AND u.${indexColumn(f, to)} IS NULL)`;
  const sets = PII_FIELDS.map(
    (f) =>
      `${indexColumn(f, to)} = CASE WHEN ${still(f)} THEN m.${f}_new ELSE u.${indexColumn(f, to)} END`,
  );
  sets.push(`index_epoch = ${epoch}`);
  const params: unknown[] = [fills.map((x) => x.id)];
  for (const f of PII_FIELDS) {
    params.push(
      fills.map((x) => x.fields[f]?.oldHash ?? null),
      fills.map((x) => x.fields[f]?.hash ?? null),
    );
  }
  const columns = PII_FIELDS.flatMap((f) => [`${f}_old`, `${f}_new`]);
  const unnest = params.map((_, i) => `$${i + 1}::${i === 0 ? "int[]" : "text[]"}`);
  const { rowCount } = await db
    .query(
      `UPDATE users AS u SET ${sets.join(", ")}
         FROM unnest(${unnest.join(", ")}) AS m(id, ${columns.join(", ")})
        WHERE u.id = m.id AND (${PII_FIELDS.map(still).join(" OR ")})`,
      params,
    )
    .catch((err: { code?: string }) => {
      // Two rows whose values index alike under the new key but not under
      // the old (written outside the service): not the job's to decide.
      throw err.code === "23505" ? new IndexCollisionError() : err;
    });
  return rowCount ?? 0;
}
