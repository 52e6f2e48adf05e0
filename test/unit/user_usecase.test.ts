import { describe, expect, it, vi } from "vitest";
import { background, type Context } from "../../internal/biz/context.js";
import { BizError, reasonName } from "../../internal/biz/errors.js";
import {
  KEY_CHANGE_ATTEMPTS,
  RevokedKeyWriteError,
  StaleIndexWriteError,
} from "../../internal/biz/sealed_store.js";
import { UserUsecase, type NewUser } from "../../internal/biz/user_usecase.js";
import { fairQueue } from "../../internal/pkg/limit/fair_queue.js";
import { FakeDataKeys } from "./fakes/data_keys.js";
import { withActiveKey, rotateKey, revokeKey } from "./fakes/key_rows.js";
import { fakeIndexKeys, realFieldCipher } from "./fakes/field_cipher.js";
import { fakeLoginAttempts } from "./fakes/login_attempts.js";
import { fakeUserRepo } from "./fakes/user_repo.js";
import { fakeUsersTable } from "./fakes/users_table.js";

vi.mock("../../internal/pkg/password/scrypt.js", () => import("./fakes/password.js"));

/** The use case over fake storage, with the real field cipher. */
function newTestUsecase(opts: { maxAttempts?: number } = {}) {
  const keys = withActiveKey(new FakeDataKeys());
  const index = fakeIndexKeys();
  const table = fakeUsersTable(keys, index);
  const repo = fakeUserRepo(table);
  const logins = fakeLoginAttempts(opts.maxAttempts ?? 0, 30_000);
  const cipher = realFieldCipher(keys, index);
  const sut = new UserUsecase(repo, cipher, {
    logins,
    policy: { maxAttempts: opts.maxAttempts ?? 0, lockMs: 30_000 },
    hashing: fairQueue({ concurrency: 2, capacity: 8, perKey: 4 }),
  });
  return { sut, keys, index, table, repo, logins, cipher };
}

const alice: NewUser = {
  username: "alice",
  password: "passw0rd-long",
  email: "Alice@Example.com",
  phone: "+1 415 555 0100",
  name: "Alice Liddell",
};

const caller = (name: string): Context => ({ ...background, caller: { name } });

/** The reason a use case refused with ("USER_NOT_FOUND"), and its code. */
async function refusal(p: Promise<unknown>) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof BizError)) throw new Error(`expected a BizError, got ${String(err)}`);
  return { code: err.code, reason: reasonName(err.reason).reason, metadata: err.metadata };
}

describe("UserUsecase", () => {
  describe("create and read", () => {
    it("When a user is created, Then the row holds only ciphertexts and the user reads back whole, or masked", async () => {
      const { sut, table } = newTestUsecase();
      const made = await sut.create(alice, background);
      const row = table.rows.get(made.id)!;
      for (const f of ["email", "phone", "name"] as const) {
        expect(row.fields[f]!.ciphertext.toString("latin1")).not.toContain("Alice");
        expect(row.fields[f]!.keyVersion).toBe(1);
      }
      expect(await sut.get(BigInt(made.id), "full")).toMatchObject({
        username: "alice",
        email: "Alice@Example.com",
        phone: "+14155550100",
        name: "Alice Liddell",
      });
      const masked = await sut.get(BigInt(made.id), "masked");
      expect(masked.email).not.toBe("Alice@Example.com");
      expect(masked.name).not.toBe("Alice Liddell");
    });

    it("When a user is looked up by email in another case or by phone, Then the same user is found", async () => {
      const { sut } = newTestUsecase();
      const made = await sut.create(alice, background);
      expect((await sut.lookup({ email: " ALICE@example.COM " }, "full")).id).toBe(made.id);
      expect((await sut.lookup({ phone: "+14155550100" }, "full")).id).toBe(made.id);
      expect((await sut.lookup({ username: "ALICE" }, "full")).id).toBe(made.id);
      expect(await refusal(sut.lookup({ email: "nobody@example.com" }, "full"))).toMatchObject({
        code: "NOT_FOUND",
        reason: "USER_NOT_FOUND",
      });
    });

    it("When an email is taken, Then ALREADY_EXISTS names the field, never the value", async () => {
      const { sut } = newTestUsecase();
      await sut.create(alice, background);
      const again = await refusal(
        sut.create({ ...alice, username: "alice2", phone: "" }, background),
      );
      expect(again).toEqual({
        code: "ALREADY_EXISTS",
        reason: "USER_ALREADY_EXISTS",
        metadata: { field: "email" },
      });
    });

    it("When an id is outside the table's int4 range, Then it names no user", async () => {
      const { sut } = newTestUsecase();
      for (const id of [0n, -1n, 2n ** 31n])
        expect((await refusal(sut.get(id, "full"))).reason).toBe("USER_NOT_FOUND");
    });
  });

  describe("writes refused because keys changed", () => {
    it("When the cached active key was revoked since, Then the write is sealed again under the new key", async () => {
      const { sut, keys, repo, table } = newTestUsecase();
      await sut.create(alice, background);
      // Rotated and revoked elsewhere: this instance's cache has not heard.
      rotateKey(keys);
      revokeKey(keys, 1);
      const writes = repo.writes;
      const bob = await sut.create(
        { ...alice, username: "bob", email: "bob@example.com", phone: "" },
        background,
      );
      expect(repo.writes - writes).toBe(2);
      expect(table.rows.get(bob.id)!.fields.email!.keyVersion).toBe(2);
    });

    it(`When the database refuses ${KEY_CHANGE_ATTEMPTS} writes in a row, Then the use case gives up with the last refusal`, async () => {
      const { sut, repo } = newTestUsecase();
      repo.refusals.push(
        ...Array.from({ length: KEY_CHANGE_ATTEMPTS }, () => new RevokedKeyWriteError()),
      );
      await expect(sut.create(alice, background)).rejects.toBeInstanceOf(RevokedKeyWriteError);
      expect(repo.writes).toBe(KEY_CHANGE_ATTEMPTS);
    });

    it("When indexes were made under index keys no longer in use, Then the keys are reloaded and the write made again", async () => {
      const { sut, repo, index } = newTestUsecase();
      repo.refusals.push(new StaleIndexWriteError(), new StaleIndexWriteError());
      const loads = index.loads;
      const made = await sut.create(alice, background);
      expect(repo.writes).toBe(3);
      expect(index.loads - loads).toBe(2);
      expect((await sut.lookup({ email: alice.email }, "full")).id).toBe(made.id);
    });

    it("When any other write failure happens, Then it is not retried", async () => {
      const { sut, repo } = newTestUsecase();
      repo.refusals.push(new Error("connection lost"));
      await expect(sut.create(alice, background)).rejects.toThrow("connection lost");
      expect(repo.writes).toBe(1);
    });
  });

  describe("lookups while the index keys change", () => {
    it("When the database answers under another index epoch, Then the keys are reloaded and the lookup asked again, at most three times", async () => {
      const { sut, repo, index } = newTestUsecase();
      const made = await sut.create(alice, background);
      const byHash = repo.byHash;
      let reads = 0;
      repo.byHash = async (field, hashes) => {
        reads++;
        return { ...(await byHash(field, hashes)), epoch: 99 };
      };
      const loads = index.loads;
      expect((await sut.lookup({ email: alice.email }, "full")).id).toBe(made.id);
      expect(reads).toBe(KEY_CHANGE_ATTEMPTS);
      expect(index.loads - loads).toBe(KEY_CHANGE_ATTEMPTS - 1);
    });
  });

  describe("unreadable users", () => {
    it("When a value's key is revoked or its bytes altered, Then that user alone fails, and a list reports it beside the page", async () => {
      const { sut, keys, table, cipher } = newTestUsecase();
      const a = await sut.create(alice, background);
      rotateKey(keys);
      cipher.reloadKeys();
      const b = await sut.create(
        { ...alice, username: "bob", email: "bob@example.com", phone: "" },
        background,
      );
      const c = await sut.create(
        { ...alice, username: "carol", email: "carol@example.com", phone: "" },
        background,
      );
      revokeKey(keys, 1);
      // As the revocation's announcement makes every instance do.
      cipher.reloadKeys();
      const row = table.rows.get(c.id)!;
      row.fields.name!.ciphertext = Buffer.from(row.fields.name!.ciphertext);
      row.fields.name!.ciphertext[row.fields.name!.ciphertext.length - 1]! ^= 1;

      expect(await refusal(sut.get(BigInt(a.id), "full"))).toMatchObject({
        code: "FAILED_PRECONDITION",
        reason: "KEY_REVOKED",
      });
      expect(await refusal(sut.get(BigInt(c.id), "full"))).toMatchObject({
        code: "DATA_LOSS",
        reason: "USER_DATA_CORRUPT",
        metadata: { id: String(c.id), field: "name" },
      });
      const page = await sut.list({ pageSize: 10, pageToken: "", name: "" }, "full");
      expect(page.users.map((u) => u.id)).toEqual([b.id]);
      expect(page.unreadable.map((u) => [u.id, reasonName(u.error.reason).reason])).toEqual([
        [a.id, "KEY_REVOKED"],
        [c.id, "USER_DATA_CORRUPT"],
      ]);
    });
  });

  describe("paging", () => {
    it("When users are listed two at a time, Then each page follows the last and the last page has no token", async () => {
      const { sut } = newTestUsecase();
      const ids: number[] = [];
      for (const n of [1, 2, 3, 4, 5]) {
        const u = await sut.create(
          { ...alice, username: `u${n}`, email: `u${n}@example.com`, phone: "" },
          background,
        );
        ids.push(u.id);
      }
      const seen: number[] = [];
      let token = "";
      const tokens: string[] = [];
      do {
        const page = await sut.list({ pageSize: 2, pageToken: token, name: "" }, "masked");
        seen.push(...page.users.map((u) => u.id));
        token = page.nextPageToken;
        tokens.push(token);
      } while (token);
      expect(seen).toEqual(ids);
      expect(tokens.length).toBe(3);
    });

    it("When a name filter is given, Then only its users are listed (spaces aside), and a token of another filter is refused", async () => {
      const { sut } = newTestUsecase();
      for (const [n, name] of [
        [1, "Ann Lee"],
        [2, "Bo Lee"],
        [3, "Ann   Lee"],
        [4, "Ann Lee"],
      ] as const) {
        await sut.create(
          { ...alice, username: `u${n}`, email: `u${n}@example.com`, phone: "", name },
          background,
        );
      }
      const first = await sut.list({ pageSize: 1, pageToken: "", name: " Ann  Lee " }, "full");
      expect(first.users.map((u) => u.username)).toEqual(["u1"]);
      const rest = await sut.list(
        { pageSize: 5, pageToken: first.nextPageToken, name: "Ann Lee" },
        "full",
      );
      expect(rest.users.map((u) => u.username)).toEqual(["u3", "u4"]);
      expect(
        await refusal(sut.list({ pageSize: 5, pageToken: first.nextPageToken, name: "" }, "full")),
      ).toMatchObject({ code: "INVALID_ARGUMENT", reason: "INVALID_PAGE_TOKEN" });
    });
  });

  describe("updates", () => {
    it("When a field is updated or cleared, Then the rest of the user is kept", async () => {
      const { sut } = newTestUsecase();
      const made = await sut.create(alice, background);
      const change = { email: "", phone: "", name: "", password: "" };
      const updated = await sut.update(
        BigInt(made.id),
        { ...change, paths: ["name", "phone"], name: "Alice L." },
        "full",
        background,
      );
      expect(updated).toMatchObject({ email: alice.email, phone: "", name: "Alice L." });
      expect(
        await refusal(
          sut.update(BigInt(made.id), { ...change, paths: ["id"] }, "full", background),
        ),
      ).toMatchObject({ code: "INVALID_ARGUMENT", metadata: { field: "update_mask" } });
      expect(
        await refusal(
          sut.update(BigInt(made.id + 1), { ...change, paths: ["name"] }, "full", background),
        ),
      ).toMatchObject({ reason: "USER_NOT_FOUND" });
    });
  });

  describe("logins", () => {
    it("When a login is a username or an email, Then the right password gives the user's id, and a wrong one or an unknown login the same refusal", async () => {
      const { sut } = newTestUsecase();
      const made = await sut.create(alice, background);
      expect(await sut.verifyPassword("alice", alice.password, background)).toBe(made.id);
      expect(await sut.verifyPassword("ALICE@example.com", alice.password, background)).toBe(
        made.id,
      );
      const wrong = await refusal(sut.verifyPassword("alice", "nope", background));
      const unknown = await refusal(sut.verifyPassword("nobody", alice.password, background));
      expect(wrong).toEqual(unknown);
      expect(wrong).toMatchObject({ code: "UNAUTHENTICATED", reason: "INVALID_CREDENTIALS" });
    });

    it("When one caller fails past the limit, Then that caller is locked out with a retry time, another caller is not, and a success clears the count", async () => {
      const { sut, logins } = newTestUsecase({ maxAttempts: 2 });
      const made = await sut.create(alice, background);
      const mallory = caller("mallory");
      for (let i = 0; i < 2; i++)
        expect((await refusal(sut.verifyPassword("alice", "guess", mallory))).reason).toBe(
          "INVALID_CREDENTIALS",
        );
      const locked = await sut.verifyPassword("alice", alice.password, mallory).catch((e) => e);
      expect(locked).toBeInstanceOf(BizError);
      expect(locked).toMatchObject({ code: "RESOURCE_EXHAUSTED", retryAfterMs: 30_000 });
      expect(reasonName((locked as BizError).reason).reason).toBe("ACCOUNT_LOCKED");
      // The owner, through another caller, is served; their count is cleared after.
      const owner = caller("owner");
      await expect(sut.verifyPassword("alice", "typo", owner)).rejects.toBeInstanceOf(BizError);
      expect(await sut.verifyPassword("alice", alice.password, owner)).toBe(made.id);
      expect(logins.counts.size).toBe(1);
    });
  });
});
