import { randomBytes } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { background } from "../../internal/biz/context.js";
import { IndexRotation } from "../../internal/biz/index_rotation.js";
import { USER_LAYOUT } from "../../internal/biz/user.js";
import { UserUsecase } from "../../internal/biz/user_usecase.js";
import { FakeDataKeys } from "./fakes/data_keys.js";
import { withActiveKey } from "./fakes/key_rows.js";
import { fakeIndexKeys, realFieldCipher } from "./fakes/field_cipher.js";
import { fakeIndexRotationRepo } from "./fakes/index_rotation_repo.js";
import { silentLogger } from "./fakes/logger.js";
import { fakeSealedStore } from "./fakes/sealed_store.js";
import { fakeUserRepo } from "./fakes/user_repo.js";
import { fakeUsersTable } from "./fakes/users_table.js";

vi.mock("../../internal/pkg/password/scrypt.js", () => import("./fakes/password.js"));

/** The rotation over fake storage, the real cipher; `users` reads and writes as the service does. */
function newTestIndexRotation() {
  const keys = withActiveKey(new FakeDataKeys());
  const index = fakeIndexKeys();
  const table = fakeUsersTable(keys, index);
  const store = fakeSealedStore(table, keys);
  const jobs = fakeIndexRotationRepo(store, index);
  const cipher = realFieldCipher(keys, index);
  const users = new UserUsecase(fakeUserRepo(table), cipher);
  // The fakes keep index keys unwrapped: the new key is the key.
  const sut = new IndexRotation(
    jobs,
    store,
    cipher,
    () => randomBytes(32),
    { batchSize: 2, pauseMs: 0 },
    silentLogger,
  );
  const seed = async (n: number) => {
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const u = await users.create(
        {
          username: `u${i}`,
          password: "passw0rd-long",
          email: `u${i}@example.com`,
          phone: "",
          name: `User ${i}`,
        },
        background,
      );
      ids.push(u.id);
    }
    return ids;
  };
  const slotsOf = (id: number) =>
    Object.values(table.rows.get(id)!.fields).map((f) => f.hashes.map((h) => h !== null));
  return { sut, index, table, jobs, cipher, users, seed, slotsOf };
}

describe("IndexRotation", () => {
  it("When the index key is rotated, Then every row is indexed under the new key, the old column is emptied, and lookups find the same users", async () => {
    const { sut, index, seed, slotsOf, users } = newTestIndexRotation();
    const ids = await seed(5);
    const before = index.current.key;
    const { started, status } = await sut.start({});
    expect(started).toBe(true);
    expect(status.job).toMatchObject({ phase: "backfill", state: "running", toSlot: 1 });
    expect(status.rowsRemaining).toBe(5n);
    // A second start answers the rotation under way.
    expect((await sut.start({})).started).toBe(false);

    await sut.worker.work();
    const done = await sut.status();
    expect(done.job).toMatchObject({ phase: "done", state: "finished", rowsDone: 5n });
    expect(done.rowsRemaining).toBe(0n);
    expect(index.current).toMatchObject({ slot: 1, next: undefined });
    expect(index.current.key.equals(before)).toBe(false);
    for (const id of ids)
      expect(slotsOf(id)).toEqual([
        [false, true],
        [false, true],
      ]);
    for (const [i, id] of ids.entries())
      expect((await users.lookup({ email: `u${i}@example.com` }, "full")).id).toBe(id);
  });

  it("When a value cannot be read, Then the switch waits: the job fails counting the row, both keys keep serving, and a new start resumes", async () => {
    const { sut, index, seed, table, users } = newTestIndexRotation();
    const [, bad, last] = await seed(3);
    const row = table.rows.get(bad!)!;
    const c = Buffer.from(row.fields.email!.ciphertext);
    c[c.length - 1]! ^= 1;
    row.fields.email = { ...row.fields.email!, ciphertext: c };

    await sut.start({});
    await sut.worker.work();
    const failed = await sut.status();
    expect(failed.job).toMatchObject({ phase: "backfill", state: "failed", rowsFailed: 1n });
    expect(index.current.next).toBeDefined();
    expect((await users.lookup({ email: "u2@example.com" }, "full")).id).toBe(last);

    // The operator deletes (or rewrites) the row; the rotation resumes from its first row.
    table.rows.delete(bad!);
    expect((await sut.start({})).started).toBe(true);
    await sut.worker.work();
    expect((await sut.status()).job).toMatchObject({ phase: "done", state: "finished" });
    expect((await users.lookup({ email: "u2@example.com" }, "full")).id).toBe(last);
  });

  it("When two users index alike under the new key only (written outside the service), Then the job fails naming the rows", async () => {
    const { sut, seed, table, cipher } = newTestIndexRotation();
    const [a, b] = await seed(2);
    // b's email sealed as a's, its index left as b's own: the old key never compared them.
    const { ciphertext } = await cipher.encryptField(
      USER_LAYOUT.fieldName("email"),
      new TextEncoder().encode("u0@example.com"),
      USER_LAYOUT.rowContext(b!),
    );
    const row = table.rows.get(b!)!;
    row.fields.email = { ...row.fields.email!, ciphertext };

    await sut.start({});
    await sut.worker.work();
    const { job } = await sut.status();
    expect(job).toMatchObject({ phase: "backfill", state: "failed" });
    expect(job!.lastError).toContain(
      `a value of users ${a}..${b} indexes under the new key like another user's`,
    );
  });

  it("When another instance holds the job's lock, Then this one does nothing", async () => {
    const { sut, seed, jobs, slotsOf } = newTestIndexRotation();
    const [id] = await seed(1);
    await sut.start({});
    jobs.held = true;
    await sut.worker.work();
    expect(slotsOf(id!)).toEqual([
      [true, false],
      [true, false],
    ]);
    expect((await sut.status()).job).toMatchObject({ phase: "backfill", cursorId: 0 });
  });
});
