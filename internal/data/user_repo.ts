import type pg from "pg";
import {
  DuplicateError,
  RevokedKeyWriteError,
  PII_FIELDS,
  type PiiField,
  type StoredUser,
  type UserRepo,
} from "../biz/user.js";

const COLUMNS = `id, username, password, email_encrypted, email_hash, email_key_version,
  phone_encrypted, phone_hash, phone_key_version, name_encrypted, name_hash, name_key_version,
  created_at, updated_at`;

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
      const keyVersion = r[`${f}_key_version`] as number;
      fields[f] = { ciphertext, hash: r[`${f}_hash`] as string, keyVersion };
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

/**
 * The SET clause that gathers a row's key versions from an expression per
 * field (in SET, a column names the row's value before the update).
 */
export const keyVersionsSet = (perField: string[]) =>
  `key_versions = array_remove(ARRAY[${perField.join(", ")}], NULL)`;

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
        `INSERT INTO users (id, username, password, email_encrypted, email_hash, email_key_version,
            phone_encrypted, phone_hash, phone_key_version, name_encrypted, name_hash, name_key_version,
            key_versions)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING ${COLUMNS}`,
        [
          user.id,
          user.username,
          user.passwordHash,
          ...PII_FIELDS.flatMap((name) => [
            f(name)?.ciphertext ?? null,
            f(name)?.hash ?? null,
            f(name)?.keyVersion ?? null,
          ]),
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
        sets.push(`${name}_hash = ${param(sealed?.hash ?? null)}`);
        const version = param(sealed?.keyVersion ?? null);
        sets.push(`${name}_key_version = ${version}`);
        versions.push(`${version}::int`);
      }
      if (change.passwordHash !== undefined) sets.push(`password = ${param(change.passwordHash)}`);
      sets.push(keyVersionsSet(versions));
      sets.push("updated_at = CURRENT_TIMESTAMP");
      // One statement, committed as it completes.
      ctx.beginCommit();
      return one(
        `UPDATE users SET ${sets.join(", ")} WHERE id = $1 RETURNING ${COLUMNS}`,
        params,
      ).catch(duplicates);
    },

    async countByKeyVersion() {
      const { rows } = await pool.query<{ version: number; n: string }>(
        "SELECT v AS version, count(*) AS n FROM users, unnest(key_versions) AS v GROUP BY v",
      );
      return new Map(rows.map((r) => [r.version, BigInt(r.n)]));
    },

    async delete(id, ctx) {
      ctx.beginCommit();
      const { rowCount } = await pool.query("DELETE FROM users WHERE id = $1", [id]);
      return (rowCount ?? 0) > 0;
    },
  };
}
