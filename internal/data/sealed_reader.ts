import pg from "pg";
import type { Slot } from "../biz/kms/index_keys.js";
import type { RowToVerify, SealedReader } from "../biz/data_verify.js";
import { PII_FIELDS, USER_LAYOUT, type PiiField } from "../biz/user.js";
import { withReadOnlyTx } from "./tx.js";
import { indexColumn, indexColumns } from "./user_schema.js";

// The users table read for `migrate verify --data`: batch by batch after an
// id (keyset pagination on the primary key), each batch one statement in a
// READ ONLY transaction, with the index keys in use in the same snapshot.

const sealedColumn = (f: PiiField) => `${f}_encrypted`;

const COLUMNS = PII_FIELDS.flatMap((f) => [
  sealedColumn(f),
  `${f}_key_version`,
  ...indexColumns(f),
]).join(", ");

// One row even past the last user (u.id NULL then): the keys' state comes
// with every answer, as user_repo's lookups read it.
const BATCH = `SELECT k.epoch, k.slot, k.next_encrypted_key IS NOT NULL AS rotating, u.*
  FROM kms_index_keys k
  LEFT JOIN LATERAL (SELECT id, index_epoch, ${COLUMNS} FROM users
                      WHERE id > $1 ORDER BY id LIMIT $2) u ON true
 WHERE k.id = 1`;

type Row = Record<string, unknown> & {
  epoch: number;
  slot: number;
  rotating: boolean;
  id: number | null;
  index_epoch: number | null;
};

/**
 * A pool whose every session is read-only (default_transaction_read_only):
 * whatever runs on it, the KMS's start included, the database refuses to
 * write. Reading only, so bounded by `statementTimeoutMs` too.
 */
export function readOnlyPool(
  url: string,
  opts: { connectTimeoutMs: number; statementTimeoutMs: number },
): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 3,
    connectionTimeoutMillis: opts.connectTimeoutMs,
    options: `-c default_transaction_read_only=on -c statement_timeout=${opts.statementTimeoutMs}`,
    application_name: "migrate verify --data",
  });
  // A dropped connection's failure surfaces at the query that uses it
  // instead (see data.ts: without listeners it would crash the process).
  pool.on("error", () => undefined);
  pool.on("connect", (client) => client.on("error", () => undefined));
  return pool;
}

/** biz.SealedReader on the users table, over `pool`. */
export function newUserSealedReader(pool: pg.Pool): SealedReader {
  return {
    layout: USER_LAYOUT,
    table: "users",
    sealedColumn: (field) => sealedColumn(field as PiiField),
    indexColumn: (field, slot: Slot) => indexColumn(field as PiiField, slot),

    async batch(afterId, limit) {
      const rows = await withReadOnlyTx(pool, (c) => c.query<Row>(BATCH, [afterId, limit]));
      const first = rows.rows[0];
      const keys = first && {
        epoch: first.epoch,
        slot: (first.slot === 1 ? 1 : 0) as Slot,
        rotating: first.rotating,
      };
      return { keys, rows: rows.rows.filter((r) => r.id !== null).map(toRow) };
    },

    async count(afterId) {
      const { rows } = await withReadOnlyTx(pool, (c) =>
        c.query<{ n: string }>("SELECT count(*) AS n FROM users WHERE id > $1", [afterId]),
      );
      return Number(rows[0]!.n);
    },
  };
}

function toRow(r: Row): RowToVerify {
  const fields: RowToVerify["fields"] = {};
  for (const f of PII_FIELDS) {
    const ciphertext = (r[sealedColumn(f)] as Buffer | null) ?? null;
    const [a, b] = indexColumns(f);
    const hashes = [(r[a] as string | null) ?? null, (r[b] as string | null) ?? null] as const;
    if (ciphertext || hashes[0] !== null || hashes[1] !== null)
      fields[f] = {
        ciphertext,
        keyVersion: (r[`${f}_key_version`] as number | null) ?? null,
        hashes,
      };
  }
  return { id: r.id!, indexEpoch: r.index_epoch, fields };
}
