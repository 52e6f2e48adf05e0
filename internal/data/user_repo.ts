import type pg from "pg";
import {
  PII_FIELDS,
  type PiiField,
  type StoredField,
  type StoredUser,
  type UserRepo,
} from "../biz/user.js";
import { StaleIndexWriteError } from "../biz/sealed_store.js";
import { indexColumns, keyVersionsSet, writeRefusal } from "./user_schema.js";

const COLUMNS = `id, username, password_hash, email_encrypted, email_key_version,
  phone_encrypted, phone_key_version, name_encrypted, name_key_version,
  email_hash, email_hash_b, phone_hash, phone_hash_b, name_hash, name_hash_b, index_epoch,
  created_at, updated_at`;

// A lookup answers with the epoch of the index keys in the same snapshot:
// a caller whose keys are older reloads them and asks again.
const withEpoch = (rows: string) =>
  `SELECT k.epoch AS keys_epoch, u.* FROM kms_index_keys k
     LEFT JOIN LATERAL (${rows}) u ON true WHERE k.id = 1`;

type Row = Record<string, unknown> & {
  id: number;
  username: string;
  password_hash: string;
  created_at: Date;
  updated_at: Date;
};

function toUser(r: Row): StoredUser {
  const fields: StoredUser["fields"] = {};
  for (const f of PII_FIELDS) {
    const ciphertext = r[`${f}_encrypted`] as Buffer | null;
    if (ciphertext) {
      const keyVersion = r[`${f}_key_version`] as number;
      const [a, b] = indexColumns(f);
      const hashes = [(r[a] as string | null) ?? null, (r[b] as string | null) ?? null] as const;
      fields[f] = {
        ciphertext,
        hashes,
        keyVersion,
        indexEpoch: (r.index_epoch as number | null) ?? 0,
      };
    }
  }
  return {
    id: r.id,
    username: r.username,
    passwordHash: r.password_hash,
    fields,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const refused = (err: unknown): never => {
  throw writeRefusal(err);
};

/**
 * The index keys' epoch the written fields' blind indexes were made under
 * (migration 000018 refuses any but the current one); undefined when no
 * index is written. Fields sealed across a reload of the index keys are made
 * again.
 */
function indexEpochOf(fields: (StoredField | null | undefined)[]): number | undefined {
  const epochs = new Set(fields.flatMap((f) => (f ? [f.indexEpoch] : [])));
  if (epochs.size > 1) throw new StaleIndexWriteError();
  return epochs.values().next().value;
}

/** biz.UserRepo on the users table. */
export function newUserRepo(pool: pg.Pool): UserRepo {
  const one = async (sql: string, params: unknown[]) => {
    const { rows } = await pool.query<Row>(sql, params);
    return rows[0] ? toUser(rows[0]) : undefined;
  };
  const indexed = async (sql: string, params: unknown[]) => {
    const { rows } = await pool.query<Row & { keys_epoch: number }>(withEpoch(sql), params);
    return {
      found: rows.filter((r) => r.id !== null).map(toUser),
      epoch: rows[0]?.keys_epoch,
    };
  };
  return {
    async nextId() {
      const { rows } = await pool.query<{ id: number }>(
        "SELECT nextval(pg_get_serial_sequence('users', 'id'))::int AS id",
      );
      return rows[0]!.id;
    },

    insert(user, ctx) {
      const f = (name: PiiField) => user.fields[name];
      const versions = PII_FIELDS.flatMap((name) => (f(name) ? [f(name)!.keyVersion] : []));
      const epoch = indexEpochOf(PII_FIELDS.map(f));
      // One statement, committed as it completes.
      ctx.beginCommit();
      return one(
        `INSERT INTO users (id, username, password_hash, email_encrypted, email_hash, email_hash_b,
            email_key_version, phone_encrypted, phone_hash, phone_hash_b, phone_key_version,
            name_encrypted, name_hash, name_hash_b, name_key_version, key_versions, index_epoch)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         RETURNING ${COLUMNS}`,
        [
          user.id,
          user.username,
          user.passwordHash,
          ...PII_FIELDS.flatMap((name) => [
            f(name)?.ciphertext ?? null,
            f(name)?.hashes[0] ?? null,
            f(name)?.hashes[1] ?? null,
            f(name)?.keyVersion ?? null,
          ]),
          versions,
          epoch ?? null,
        ],
      ).then((u) => u!, refused);
    },

    byId: (id) => one(`SELECT ${COLUMNS} FROM users WHERE id = $1`, [id]),
    byUsername: (username) =>
      one(`SELECT ${COLUMNS} FROM users WHERE lower(username) = lower($1)`, [username]),
    async byHash(field, hashes) {
      const [a, b] = indexColumns(field);
      const read = await indexed(
        `SELECT ${COLUMNS} FROM users WHERE ${a} = $1 OR ${b} = $2 ORDER BY id LIMIT 1`,
        [...hashes],
      );
      return { found: read.found[0], epoch: read.epoch };
    },

    list: ({ limit, afterId, nameHashes }) =>
      indexed(
        `SELECT ${COLUMNS} FROM users
          WHERE id > $1 AND ($2::bool OR name_hash = $3 OR name_hash_b = $4) ORDER BY id LIMIT $5`,
        [
          afterId,
          nameHashes === undefined,
          nameHashes?.[0] ?? null,
          nameHashes?.[1] ?? null,
          limit,
        ],
      ),

    async update(id, change, ctx) {
      const sets: string[] = [];
      const params: unknown[] = [id];
      const param = (value: unknown) => {
        params.push(value);
        return `$${params.length}`;
      };
      // key_versions from the new versions and the unchanged columns (in SET,
      // a column names its value before the update).
      const versions: string[] = [];
      for (const name of PII_FIELDS) {
        if (!(name in change.fields)) {
          versions.push(`${name}_key_version`);
          continue;
        }
        const sealed = change.fields[name] ?? null;
        sets.push(`${name}_encrypted = ${param(sealed?.ciphertext ?? null)}`);
        indexColumns(name).forEach((column, slot) =>
          sets.push(`${column} = ${param(sealed?.hashes[slot] ?? null)}`),
        );
        const version = param(sealed?.keyVersion ?? null);
        sets.push(`${name}_key_version = ${version}`);
        versions.push(`${version}::int`);
      }
      const epoch = indexEpochOf(Object.values(change.fields));
      if (epoch !== undefined) sets.push(`index_epoch = ${param(epoch)}`);
      if (change.passwordHash !== undefined)
        sets.push(`password_hash = ${param(change.passwordHash)}`);
      sets.push(keyVersionsSet(versions));
      sets.push("updated_at = CURRENT_TIMESTAMP");
      // One statement, committed as it completes.
      ctx.beginCommit();
      return one(
        `UPDATE users SET ${sets.join(", ")} WHERE id = $1 RETURNING ${COLUMNS}`,
        params,
      ).catch(refused);
    },

    async delete(id, ctx) {
      ctx.beginCommit();
      const { rowCount } = await pool.query("DELETE FROM users WHERE id = $1", [id]);
      return (rowCount ?? 0) > 0;
    },
  };
}
