import type pg from "pg";
import { openKms } from "../../cmd/server/kms.js";
import type { FieldCipher } from "../../internal/biz/kms/field_cipher.js";
import { PII_FIELDS, userFieldName, userRowContext } from "../../internal/biz/user.js";
import type { Config } from "../../internal/conf/load.js";
import { openData } from "../../internal/data/data.js";
import { migratorOptions } from "../../internal/migrate/options.js";
import { run } from "../../internal/migrate/runner.js";
import { normalise } from "../../internal/pkg/kms/blindindex.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { hashPassword } from "../../internal/pkg/password/scrypt.js";

// Many users, fast, for the re-encryption benchmark and the reliability
// suite's re-encryption at scale.

/** Rows per INSERT while seeding (13 arrays of this length per statement). */
const INSERT_BATCH = 5000;
/** Data key versions the users are spread over; the active key is the next one. */
export const OLD_VERSIONS = [1, 2, 3];
export const ACTIVE = OLD_VERSIONS.length + 1;

const silent = createLogger({ level: "silent", format: "json" });
const encoder = new TextEncoder();

/** A user's plaintext values: what CreateUser would have stored (phone as E.164). */
export const person = (id: number) => ({
  email: `bench${id}@example.com`,
  phone: normalise("phone", `+1 555 ${String(1_000_000 + id)}`),
  name: `Bench User ${id}`,
});

/**
 * Migrations, then `users` users written straight into the database, a third
 * under each of data keys 1, 2 and 3, then key 4 active; vacuumed and
 * analysed. Timed. CreateUser would spend minutes in scrypt for 100 000;
 * these rows hold real values: ciphertexts from the service's own field
 * cipher (under `conf`'s root key) bound to their row and field as the user
 * repository binds them, their blind indexes, key version columns and
 * key_versions, one real scrypt hash (password "bench-passw0rd").
 */
export async function seedUsers(url: string, conf: Config, users: number) {
  const migrated = await run(migratorOptions(undefined, url, silent), { kind: "up" });
  if (migrated.failed) throw new Error(`migrate up failed: ${migrated.failed.message}`);
  const data = await openData(conf.data!.database!, silent);
  const kms = await openKms(conf.kms!, { data, log: silent });
  const took = { sealMs: 0, insertMs: 0, vacuumMs: 0 };
  try {
    const passwordHash = await hashPassword("bench-passw0rd");
    for (const [i, version] of OLD_VERSIONS.entries()) {
      if (i > 0) await kms.keys.rotate("bench: next third");
      const from = Math.floor((users * i) / OLD_VERSIONS.length) + 1;
      const to = Math.floor((users * (i + 1)) / OLD_VERSIONS.length);
      for (let first = from; first <= to; first += INSERT_BATCH) {
        const ids = range(first, Math.min(first + INSERT_BATCH - 1, to));
        await insertUsers(data.pool, kms.cipher, ids, passwordHash, version, took);
      }
    }
    const rotation = await kms.keys.rotate("bench: the job's target");
    if (rotation.key.version !== ACTIVE)
      throw new Error(`setup: active key is ${rotation.key.version}, expected ${ACTIVE}`);
    await data.pool.query("SELECT setval(pg_get_serial_sequence('users', 'id'), $1)", [
      Math.max(users, 1),
    ]);
    // Both copies start from the same settled table: no autovacuum or
    // planner surprise during either clock.
    const started = performance.now();
    await data.pool.query("VACUUM ANALYZE users");
    took.vacuumMs = performance.now() - started;
  } finally {
    await kms.close();
    await data.close();
  }
  return took;
}

/** One INSERT of `ids`, every value sealed and indexed as UserUsecase.create does. */
async function insertUsers(
  pool: pg.Pool,
  cipher: FieldCipher,
  ids: number[],
  passwordHash: string,
  version: number,
  took: { sealMs: number; insertMs: number },
) {
  let started = performance.now();
  const cols = {
    username: [] as string[],
    ...Object.fromEntries(
      PII_FIELDS.flatMap((f) => [
        [`${f}_encrypted`, [] as Buffer[]],
        [`${f}_hash`, [] as string[]],
        [`${f}_key_version`, [] as number[]],
      ]),
    ),
  } as Record<string, unknown[]>;
  for (const id of ids) {
    const values = person(id);
    cols.username!.push(`bench_${id}`);
    for (const f of PII_FIELDS) {
      const sealed = await cipher.encryptField(
        userFieldName(f),
        encoder.encode(values[f]),
        userRowContext(id),
      );
      if (sealed.keyVersion !== version)
        throw new Error(`setup: sealed under ${sealed.keyVersion}, expected ${version}`);
      cols[`${f}_encrypted`]!.push(sealed.ciphertext);
      cols[`${f}_hash`]!.push(cipher.hashField(f, values[f]));
      cols[`${f}_key_version`]!.push(sealed.keyVersion);
    }
  }
  took.sealMs += performance.now() - started;
  started = performance.now();
  // key_versions as user_repo's insert writes it: each present field's version.
  // A fresh database: the index key fills slot 0 (<field>_hash), at its epoch.
  await pool.query(
    `INSERT INTO users (id, username, password_hash, email_encrypted, email_hash, email_key_version,
        phone_encrypted, phone_hash, phone_key_version, name_encrypted, name_hash, name_key_version,
        key_versions, index_epoch)
     SELECT id, username, $3, ee, eh, ev, pe, ph, pv, ne, nh, nv, ARRAY[ev, pv, nv],
            (SELECT epoch FROM kms_index_keys WHERE id = 1 AND slot = 0 AND next_encrypted_key IS NULL)
       FROM unnest($1::int[], $2::text[], $4::bytea[], $5::text[], $6::int[], $7::bytea[],
                   $8::text[], $9::int[], $10::bytea[], $11::text[], $12::int[])
         AS t(id, username, ee, eh, ev, pe, ph, pv, ne, nh, nv)`,
    [
      ids,
      cols.username,
      passwordHash,
      ...PII_FIELDS.flatMap((f) => [
        cols[`${f}_encrypted`],
        cols[`${f}_hash`],
        cols[`${f}_key_version`],
      ]),
    ],
  );
  took.insertMs += performance.now() - started;
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);
