import { describe, expect, it, vi } from "vitest";
import { background } from "../../internal/biz/context.js";
import { BizError, reasonName } from "../../internal/biz/errors.js";
import { Reencryption, type KeyVersions } from "../../internal/biz/reencryption.js";
import { KEY_CHANGE_ATTEMPTS, RevokedKeyWriteError } from "../../internal/biz/sealed_store.js";
import { UserUsecase } from "../../internal/biz/user_usecase.js";
import { FakeDataKeys } from "./fakes/data_keys.js";
import { withActiveKey, rotateKey, activeVersion } from "./fakes/key_rows.js";
import { fakeIndexKeys, realFieldCipher } from "./fakes/field_cipher.js";
import { silentLogger } from "./fakes/logger.js";
import { fakeReencryptionRepo } from "./fakes/reencryption_repo.js";
import { fakeSealedStore } from "./fakes/sealed_store.js";
import { fakeUserRepo } from "./fakes/user_repo.js";
import { fakeUsersTable } from "./fakes/users_table.js";

vi.mock("../../internal/pkg/password/scrypt.js", () => import("./fakes/password.js"));

/** The job over fake storage, the real cipher; `users` writes rows as the service does. */
function newTestReencryption(opts: { keyVersions?: (keys: KeyVersions) => KeyVersions } = {}) {
  const keys = withActiveKey(new FakeDataKeys());
  const index = fakeIndexKeys();
  const table = fakeUsersTable(keys, index);
  const store = fakeSealedStore(table, keys);
  const jobs = fakeReencryptionRepo(store, keys);
  const cipher = realFieldCipher(keys, index);
  const users = new UserUsecase(fakeUserRepo(table), cipher);
  const versions = opts.keyVersions?.(keys) ?? keys;
  const sut = new Reencryption(
    jobs,
    store,
    versions,
    cipher,
    { batchSize: 2, pauseMs: 0 },
    silentLogger,
  );
  const seed = async (n: number, from = 0) => {
    const ids: number[] = [];
    for (let i = from; i < from + n; i++) {
      const u = await users.create(
        {
          username: `u${i}`,
          password: "passw0rd-long",
          email: `u${i}@example.com`,
          phone: `+1415555${1000 + i}`,
          name: `User ${i}`,
        },
        background,
      );
      ids.push(u.id);
    }
    return ids;
  };
  /** A rotation every instance heard of. */
  const rotate = () => {
    const v = rotateKey(keys);
    cipher.reloadKeys();
    return v;
  };
  const versionsOf = () =>
    table.sorted().flatMap((r) => Object.values(r.fields).map((f) => f.keyVersion));
  return { sut, keys, table, store, jobs, cipher, users, seed, rotate, versionsOf };
}

describe("Reencryption", () => {
  it("When values lie under an older key, Then a run moves them all to the active key in batches, and they still read", async () => {
    const { sut, seed, rotate, jobs, versionsOf, users } = newTestReencryption();
    const ids = await seed(5);
    rotate();
    const started = await sut.start({});
    expect(started.job).toMatchObject({ state: "running", targetVersion: 2, batchSize: 2 });
    expect(started.rowsRemaining).toBe(5n);
    await sut.worker.work();
    const status = await sut.status();
    expect(status.job).toMatchObject({ state: "finished", rowsDone: 5n, rowsFailed: 0n });
    expect(status.rowsRemaining).toBe(0n);
    expect(jobs.commits).toBe(3);
    expect(new Set(versionsOf())).toEqual(new Set([2]));
    expect((await users.get(BigInt(ids[4]!), "full")).email).toBe("u4@example.com");
  });

  it("When a value cannot be read, Then its row counts once as failed, the job says which, and the row's other values still move", async () => {
    const { sut, seed, rotate, table } = newTestReencryption();
    const [, bad] = await seed(3);
    const row = table.rows.get(bad!)!;
    for (const f of ["email", "name"] as const) {
      const c = Buffer.from(row.fields[f]!.ciphertext);
      c[c.length - 1]! ^= 1;
      row.fields[f] = { ...row.fields[f]!, ciphertext: c };
    }
    rotate();
    await sut.start({});
    await sut.worker.work();
    const { job } = await sut.status();
    expect(job).toMatchObject({ state: "finished", rowsDone: 3n, rowsFailed: 1n });
    expect(job!.lastError).toMatch(new RegExp(`^user ${bad} name: `));
    const fields = table.rows.get(bad!)!.fields;
    expect([fields.email!.keyVersion, fields.phone!.keyVersion, fields.name!.keyVersion]).toEqual([
      1, 2, 1,
    ]);
  });

  it("When the key rotates during a pass, Then the job starts a new pass towards the new key and leaves nothing behind", async () => {
    const { sut, seed, rotate, keys, jobs, versionsOf } = newTestReencryption();
    await seed(6);
    rotate();
    await sut.start({});
    const commit = jobs.commitBatch;
    jobs.commitBatch = async (batch) => {
      const r = await commit(batch);
      // Once, after the first batch; this instance's cache hears of it late.
      if (activeVersion(keys) === 2) rotateKey(keys);
      return r;
    };
    const retarget = vi.spyOn(jobs, "retarget");
    await sut.worker.work();
    expect(retarget).toHaveBeenCalledOnce();
    expect(retarget.mock.calls[0]![1]).toBe(3);
    expect((await sut.status()).job).toMatchObject({ state: "finished", targetVersion: 3 });
    expect(new Set(versionsOf())).toEqual(new Set([3]));
  });

  it("When this instance's cache still holds the previous key, Then the batch is sealed again under the job's target", async () => {
    const { sut, seed, keys, versionsOf } = newTestReencryption();
    await seed(3);
    // Rotated elsewhere: the job reads the new key, the cache has not heard.
    rotateKey(keys);
    await sut.start({});
    await sut.worker.work();
    expect(new Set(versionsOf())).toEqual(new Set([2]));
  });

  it(`When values keep sealing under another key than the target, Then the run gives up after ${KEY_CHANGE_ATTEMPTS} tries, committing nothing`, async () => {
    const { sut, seed, rotate, jobs } = newTestReencryption({
      // A job whose target no instance's key agrees with.
      keyVersions: (k) => ({
        list: (o) => k.list(o),
        active: async () => ({ ...(await k.active())!, version: 9 }),
      }),
    });
    await seed(2);
    rotate();
    await sut.start({});
    await expect(sut.worker.work()).rejects.toThrow(
      "values still seal under a key other than the job's target 9",
    );
    expect(jobs.commits).toBe(0);
  });

  it(`When the database refuses a batch for a revoked key, Then it is sealed again, up to ${KEY_CHANGE_ATTEMPTS} tries`, async () => {
    for (const refusals of [KEY_CHANGE_ATTEMPTS - 1, KEY_CHANGE_ATTEMPTS]) {
      const { sut, seed, rotate, store, jobs } = newTestReencryption();
      await seed(1);
      rotate();
      await sut.start({});
      const move = store.move;
      let left = refusals;
      store.move = async (moves) => {
        if (left-- > 0) throw new RevokedKeyWriteError();
        return move(moves);
      };
      const run = sut.worker.work();
      if (refusals < KEY_CHANGE_ATTEMPTS) {
        await run;
        expect((await sut.status()).job).toMatchObject({ state: "finished", rowsDone: 1n });
      } else await expect(run).rejects.toBeInstanceOf(RevokedKeyWriteError);
      // Each refusal costs one try; the last one gives up or goes through.
      expect(jobs.commits).toBe(KEY_CHANGE_ATTEMPTS);
    }
  });

  it("When a job runs, Then a second start is refused, a stop holds it, and a worker without the lock does nothing", async () => {
    const { sut, seed, rotate, jobs, versionsOf } = newTestReencryption();
    await seed(2);
    rotate();
    await sut.start({ batchSize: 1 });
    const again = await sut.start({}).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(BizError);
    expect(reasonName((again as BizError).reason).reason).toBe("REENCRYPTION_RUNNING");
    jobs.held = true;
    await sut.worker.work();
    expect(jobs.commits).toBe(0);
    jobs.held = false;
    expect((await sut.stop()).job?.state).toBe("stopped");
    await sut.worker.work();
    expect(jobs.commits).toBe(0);
    expect(new Set(versionsOf())).toEqual(new Set([1]));
  });
});
