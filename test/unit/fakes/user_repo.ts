import { PII_FIELDS, type StoredUser, type UserRepo } from "../../../internal/biz/user.js";
import { StaleIndexWriteError } from "../../../internal/biz/sealed_store.js";
import { type FakeUsersTable, type UserRow } from "./users_table.js";

const toStored = (r: UserRow): StoredUser => ({
  id: r.id,
  username: r.username,
  passwordHash: r.passwordHash,
  fields: Object.fromEntries(
    Object.entries(r.fields).map(([f, v]) => [f, { ...v, indexEpoch: r.indexEpoch }]),
  ),
  createdAt: r.createdAt,
  updatedAt: r.updatedAt,
});

/** One epoch for every written index, as data's user_repo requires. */
function epochOf(fields: ({ indexEpoch: number } | null | undefined)[], fallback: number) {
  const epochs = new Set(fields.flatMap((f) => (f ? [f.indexEpoch] : [])));
  if (epochs.size > 1) throw new StaleIndexWriteError();
  return epochs.values().next().value ?? fallback;
}

/**
 * biz.UserRepo over the in-memory users table. `writes` counts the writes
 * tried; each one first throws the next of `refusals`, if any (the
 * database refusing it, whatever it holds).
 */
export function fakeUserRepo(table: FakeUsersTable) {
  const read = <T>(found: T) => ({ found, epoch: table.index.current.epoch });
  const refuse = () => {
    repo.writes++;
    const err = repo.refusals.shift();
    if (err) throw err;
  };
  const repo = {
    writes: 0,
    refusals: [] as Error[],
    nextId: async () => table.nextId(),
    async insert(user, ctx) {
      refuse();
      const now = new Date();
      const row: UserRow = {
        id: user.id,
        username: user.username,
        passwordHash: user.passwordHash,
        fields: {},
        indexEpoch: epochOf(Object.values(user.fields), 0),
        createdAt: now,
        updatedAt: now,
      };
      for (const [f, v] of Object.entries(user.fields))
        row.fields[f as keyof UserRow["fields"]] = {
          ciphertext: v.ciphertext,
          keyVersion: v.keyVersion,
          hashes: v.hashes,
        };
      table.check(row, PII_FIELDS);
      ctx.beginCommit();
      table.rows.set(row.id, row);
      return toStored(row);
    },
    byId: async (id) => {
      const r = table.rows.get(id);
      return r && toStored(r);
    },
    byUsername: async (username) => {
      const r = table.sorted().find((x) => x.username.toLowerCase() === username.toLowerCase());
      return r && toStored(r);
    },
    byHash: async (field, hashes) => {
      const r = table
        .sorted()
        .find(
          (x) =>
            (hashes[0] !== null && x.fields[field]?.hashes[0] === hashes[0]) ||
            (hashes[1] !== null && x.fields[field]?.hashes[1] === hashes[1]),
        );
      return read(r && toStored(r));
    },
    list: async ({ limit, afterId, nameHashes }) =>
      read(
        table
          .sorted()
          .filter((x) => x.id > afterId)
          .filter(
            (x) =>
              nameHashes === undefined ||
              (nameHashes[0] !== null && x.fields.name?.hashes[0] === nameHashes[0]) ||
              (nameHashes[1] !== null && x.fields.name?.hashes[1] === nameHashes[1]),
          )
          .slice(0, limit)
          .map(toStored),
      ),
    async update(id, change, ctx) {
      refuse();
      const found = table.rows.get(id);
      if (!found) return undefined;
      const row: UserRow = { ...found, fields: { ...found.fields }, updatedAt: new Date() };
      const changed = Object.keys(change.fields) as (keyof UserRow["fields"])[];
      for (const f of changed) {
        const v = change.fields[f];
        if (v)
          row.fields[f] = { ciphertext: v.ciphertext, keyVersion: v.keyVersion, hashes: v.hashes };
        else delete row.fields[f];
      }
      row.indexEpoch = epochOf(Object.values(change.fields), found.indexEpoch);
      if (change.passwordHash !== undefined) row.passwordHash = change.passwordHash;
      table.check(row, changed);
      ctx.beginCommit();
      table.rows.set(id, row);
      return toStored(row);
    },
    async delete(id, ctx) {
      ctx.beginCommit();
      return table.rows.delete(id);
    },
  } satisfies UserRepo & Record<string, unknown>;
  return repo;
}
