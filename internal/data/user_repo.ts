import type pg from "pg";
import {
  DuplicateError,
  RevokedKeyWriteError,
  PII_FIELDS,
  type PiiField,
  type SealedField,
  type StoredUser,
  type UserRepo,
} from "../biz/user.js";
import { withTx } from "./tx.js";

const COLUMNS = `id, username, password, email_encrypted, email_hash, phone_encrypted, phone_hash,
  name_encrypted, name_hash, key_versions, created_at, updated_at`;

// The data key version of each stored ciphertext (bytes 2..5 of the format),
// kept in key_versions so the KMS can count and find what each key protects.
const KEY_VERSIONS = `ARRAY(SELECT (get_byte(c, 2) << 24) | (get_byte(c, 3) << 16) | (get_byte(c, 4) << 8) | get_byte(c, 5)
  FROM unnest(ARRAY[email_encrypted, phone_encrypted, name_encrypted]) AS c WHERE c IS NOT NULL)`;

type Row = Record<string, unknown> & {
  id: number;
  username: string;
  password: string;
  created_at: Date;
  updated_at: Date;
};

function toUser(r: Row): StoredUser {
  const fields: StoredUser["fields"] = {};
  for (const f of PII_FIELDS) {
    const ciphertext = r[`${f}_encrypted`] as Buffer | null;
    if (ciphertext) {
      const version = ciphertext.length >= 6 ? ciphertext.readUInt32BE(2) : 0;
      fields[f] = { ciphertext, hash: r[`${f}_hash`] as string, keyVersion: version };
    }
  }
  return {
    id: r.id,
    username: r.username,
    passwordHash: r.password,
    fields,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

const UNIQUE: Record<string, DuplicateError["field"]> = {
  users_username_key: "username",
  idx_users_username_lower_unique: "username",
  idx_users_email_hash_unique: "email",
  idx_users_phone_hash_unique: "phone",
};

// A unique violation names its index: say which field, never which value.
// The write refusals biz acts on: a unique value taken, and (migration
// 000008's trigger, SQLSTATE KR001) a ciphertext under a revoked key.
function duplicates(err: unknown): never {
  const e = err as { code?: string; constraint?: string };
  if (e.code === "23505" && e.constraint && UNIQUE[e.constraint])
    throw new DuplicateError(UNIQUE[e.constraint]!);
  if (e.code === "KR001") throw new RevokedKeyWriteError();
  throw err;
}

/** biz.UserRepo on the users table. */
export function newUserRepo(pool: pg.Pool): UserRepo {
  const one = async (sql: string, params: unknown[]) => {
    const { rows } = await pool.query<Row>(sql, params);
    return rows[0] ? toUser(rows[0]) : undefined;
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
      // One statement, committed as it completes.
      ctx.beginCommit();
      return one(
        `INSERT INTO users (id, username, password, email_encrypted, email_hash, phone_encrypted, phone_hash,
            name_encrypted, name_hash, key_versions)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${COLUMNS}`,
        [
          user.id,
          user.username,
          user.passwordHash,
          f("email")?.ciphertext ?? null,
          f("email")?.hash ?? null,
          f("phone")?.ciphertext ?? null,
          f("phone")?.hash ?? null,
          f("name")?.ciphertext ?? null,
          f("name")?.hash ?? null,
          versions,
        ],
      ).then((u) => u!, duplicates);
    },

    byId: (id) => one(`SELECT ${COLUMNS} FROM users WHERE id = $1`, [id]),
    byUsername: (username) =>
      one(`SELECT ${COLUMNS} FROM users WHERE lower(username) = lower($1)`, [username]),
    byHash: (field, hash) => one(`SELECT ${COLUMNS} FROM users WHERE ${field}_hash = $1`, [hash]),

    async list({ limit, afterId, nameHash }) {
      const { rows } = await pool.query<Row>(
        `SELECT ${COLUMNS} FROM users WHERE id > $1 AND ($2::text IS NULL OR name_hash = $2) ORDER BY id LIMIT $3`,
        [afterId, nameHash ?? null, limit],
      );
      return rows.map(toUser);
    },

    async update(id, change, ctx) {
      const sets: string[] = [];
      const params: unknown[] = [id];
      const set = (column: string, value: unknown) => {
        params.push(value);
        sets.push(`${column} = $${params.length}`);
      };
      for (const [name, sealed] of Object.entries(change.fields) as [
        PiiField,
        SealedField | null,
      ][]) {
        set(`${name}_encrypted`, sealed?.ciphertext ?? null);
        set(`${name}_hash`, sealed?.hash ?? null);
      }
      if (change.passwordHash !== undefined) set("password", change.passwordHash);
      return withTx(
        pool,
        async (client) => {
          const updated = await client
            .query(
              `UPDATE users SET ${[...sets, "updated_at = CURRENT_TIMESTAMP"].join(", ")} WHERE id = $1`,
              params,
            )
            .catch(duplicates);
          const { rows } = await client.query<Row>(
            `UPDATE users SET key_versions = ${KEY_VERSIONS} WHERE id = $1 RETURNING ${COLUMNS}`,
            [id],
          );
          return updated.rowCount ? toUser(rows[0]!) : undefined;
        },
        ctx,
      );
    },

    async delete(id, ctx) {
      ctx.beginCommit();
      const { rowCount } = await pool.query("DELETE FROM users WHERE id = $1", [id]);
      return (rowCount ?? 0) > 0;
    },
  };
}
