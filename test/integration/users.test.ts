import { createHash } from "node:crypto";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import {
  CreateUserRequestSchema,
  UserService,
  View,
  type User,
} from "../../api/user/v1/user_pb.js";
import { useTestApp } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { failureOf, rejection } from "../helpers/errors.js";

const ctx = useTestApp();
let viaGrpc: Client<typeof UserService>;
let viaConnect: Client<typeof UserService>;

beforeAll(() => {
  // The gRPC port (grpc-js) through a standard gRPC client, and the HTTP port through Connect.
  viaGrpc = createClient(
    UserService,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${ctx.app.grpcPort}` }),
  );
  viaConnect = createClient(
    UserService,
    createConnectTransport({ baseUrl: `http://127.0.0.1:${ctx.app.httpPort}`, httpVersion: "1.1" }),
  );
});

let serial = 0;
const fresh = (over: Record<string, string> = {}) => {
  serial++;
  return {
    username: `user_${serial}_${Date.now() % 100000}`,
    password: "s3cret-pass",
    email: `person${serial}@example.com`,
    phone: `+8613800${String(100000 + serial)}`,
    name: `Person ${serial}`,
    ...over,
  };
};

describe.each([
  ["gRPC port", () => viaGrpc],
  ["Connect port", () => viaConnect],
])("every RPC on the %s", (_port, client) => {
  /** A new user through this port: what was sent and what came back. */
  const created = async () => {
    const input = fresh();
    const { user } = await client().createUser(input);
    return { input, user: user!, id: user!.id };
  };

  it("CreateUser answers the user as given, without its password", async () => {
    const { input, user } = await created();
    expect(user).toMatchObject({
      username: input.username,
      email: input.email,
      phone: input.phone,
      name: input.name,
    });
    expect(JSON.stringify(user, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(
      input.password,
    );
  });

  it("GetUser reads the user back", async () => {
    const { input, id } = await created();
    expect((await client().getUser({ id })).user?.email).toBe(input.email);
  });

  it.each([
    ["email, in any case", (i: ReturnType<typeof fresh>) => i.email.toUpperCase(), "email"],
    ["phone", (i: ReturnType<typeof fresh>) => i.phone, "phone"],
    ["username", (i: ReturnType<typeof fresh>) => i.username, "username"],
  ] as const)("LookupUser finds the user by %s", async (_what, value, key) => {
    const { input, id } = await created();
    expect((await client().lookupUser({ key: { case: key, value: value(input) } })).user?.id).toBe(
      id,
    );
  });

  it("ListUsers filtered by name lists exactly the users of that name", async () => {
    const { input, id } = await created();
    const listed = await client().listUsers({ name: input.name });
    expect(listed.users.map((u) => u.id)).toEqual([id]);
  });

  it("UpdateUser changes the field its mask names and keeps the others", async () => {
    const { input, id } = await created();
    const updated = await client().updateUser({
      id,
      name: "Renamed Person",
      updateMask: create(FieldMaskSchema, { paths: ["name"] }),
    });
    expect(updated.user).toMatchObject({ name: "Renamed Person", email: input.email });
    const masked = await client().getUser({ id, view: View.MASKED });
    expect(masked.user?.name).toBe("R***");
  });

  it("VerifyPassword accepts the username, or the email in any case and spacing", async () => {
    const { input, id } = await created();
    const users = client();
    expect(
      (await users.verifyPassword({ login: input.username, password: input.password })).userId,
    ).toBe(id);
    expect(
      (
        await users.verifyPassword({
          login: ` ${input.email.toUpperCase()}`,
          password: input.password,
        })
      ).userId,
    ).toBe(id);
  });

  it("GetUser with the MASKED view shows only the edges of email, phone and name", async () => {
    const { input, id } = await created();
    const masked = await client().getUser({ id, view: View.MASKED });
    expect(masked.user?.email).toBe(`p***@example.com`);
    expect(masked.user?.phone).toBe(`+86****${input.phone.slice(-4)}`);
    expect(masked.user?.name).toBe(`${input.name[0]}***`);
  });

  it("DeleteUser removes the user: GetUser then answers USER_NOT_FOUND", async () => {
    const { id } = await created();
    await client().deleteUser({ id });
    expect(await rejection(client().getUser({ id }))).toMatchObject({
      code: Code.NotFound,
      reason: "USER_NOT_FOUND",
    });
  });

  it("an id beyond the table's integer range names no user (NOT_FOUND, not a server fault)", async () => {
    expect(await rejection(client().getUser({ id: 2n ** 62n }))).toMatchObject({
      code: Code.NotFound,
    });
  });
});

describe("validation", () => {
  it.each([
    ["username", { username: "1abc" }],
    ["username", { username: "ab" }],
    // Where RE2's pattern rules and V8's RegExp could part: both refuse.
    ["username", { username: "abc\n" }],
    ["username", { username: "abcé" }],
    ["password", { password: "short1" }],
    ["password", { password: "lettersonly" }],
    ["password", { password: "1234567890" }],
    ["email", { email: "not-an-address" }],
    ["phone", { phone: "13800138000" }],
    ["name", { name: "x".repeat(101) }],
    ["name", { name: "   " }],
  ])("rejects a bad %s naming the field, leaving nothing written", async (field, bad) => {
    const before = await query<{ n: string }>(ctx.db.url, "SELECT count(*) AS n FROM users");
    const f = await rejection(viaConnect.createUser(fresh(bad as Record<string, string>)));
    expect(f).toMatchObject({
      code: Code.InvalidArgument,
      reason: "VALIDATION_FAILED",
      metadata: { field },
    });
    expect(await query(ctx.db.url, "SELECT count(*) AS n FROM users")).toEqual(before);
  });

  it("rejects text that is not valid UTF-8, writing nothing", async () => {
    const before = await query(ctx.db.url, "SELECT count(*) AS n FROM users");
    const valid = toBinary(CreateUserRequestSchema, create(CreateUserRequestSchema, fresh()));
    // A name field (5) holding the bytes ff fe: not UTF-8.
    const body = Buffer.concat([Buffer.from(valid), Buffer.from([0x2a, 0x02, 0xff, 0xfe])]);
    const client = new grpc.Client(
      `127.0.0.1:${ctx.app.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    const err = await new Promise((resolve) =>
      client.makeUnaryRequest(
        `/${UserService.typeName}/CreateUser`,
        (b: Buffer) => b,
        (b: Buffer) => b,
        body,
        (e) => resolve(e),
      ),
    );
    client.close();
    expect(failureOf(err)).toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      reason: "VALIDATION_FAILED",
    });
    expect(await query(ctx.db.url, "SELECT count(*) AS n FROM users")).toEqual(before);
  });

  it("rejects an update mask naming an unknown field", async () => {
    const { user } = await viaConnect.createUser(fresh());
    const f = await rejection(
      viaConnect.updateUser({
        id: user!.id,
        updateMask: create(FieldMaskSchema, { paths: ["username"] }),
      }),
    );
    expect(f).toMatchObject({ code: Code.InvalidArgument, metadata: { field: "update_mask" } });
  });
});

describe("uniqueness", () => {
  it("a duplicate email differing only in case and spaces is ALREADY_EXISTS, naming the field, not the value", async () => {
    await viaConnect.createUser(fresh({ email: "alice.dup@example.com" }));
    const f = await rejection(viaGrpc.createUser(fresh({ email: " Alice.Dup@Example.COM " })));
    expect(f).toMatchObject({
      code: Code.AlreadyExists,
      reason: "USER_ALREADY_EXISTS",
      metadata: { field: "email" },
    });
    expect(f.message.toLowerCase()).not.toContain("alice.dup");
  });

  it("a duplicate phone is refused naming the phone field", async () => {
    const phone = "+15550001111";
    await viaConnect.createUser(fresh({ phone }));
    expect(await rejection(viaConnect.createUser(fresh({ phone })))).toMatchObject({
      metadata: { field: "phone" },
    });
  });
});

const kmsClient = () =>
  createClient(
    KmsService,
    createConnectTransport({ baseUrl: `http://127.0.0.1:${ctx.app.httpPort}`, httpVersion: "1.1" }),
  );

describe("keys", () => {
  describe("after three key rotations", () => {
    const input = fresh();
    let id: bigint;
    beforeAll(async () => {
      id = (await viaConnect.createUser(input)).user!.id;
      for (let i = 0; i < 3; i++) await kmsClient().rotateDataKey({ reason: "test" });
    });

    it.each(["email", "phone", "username"] as const)(
      "LookupUser by %s still finds the user",
      async (key) => {
        const found = await viaGrpc.lookupUser({ key: { case: key, value: input[key] } });
        expect(found.user).toMatchObject({ id, email: input.email, phone: input.phone });
      },
    );

    it("the KMS counts the values each key protects (each row records its key versions)", async () => {
      const status = await kmsClient().getStatus({});
      expect(status.keyUsage.reduce((n, u) => n + u.protectedValues, 0n)).toBeGreaterThan(0n);
    });
  });

  it("an update of one field re-encrypts that field only", async () => {
    const { user } = await viaConnect.createUser(fresh());
    const before = await query<Record<string, Buffer>>(
      ctx.db.url,
      "SELECT email_encrypted, phone_encrypted, name_encrypted FROM users WHERE id = $1",
      [Number(user!.id)],
    );
    await viaConnect.updateUser({
      id: user!.id,
      phone: "+4915112345678",
      updateMask: create(FieldMaskSchema, { paths: ["phone"] }),
    });
    const after = await query<Record<string, Buffer>>(
      ctx.db.url,
      "SELECT email_encrypted, phone_encrypted, name_encrypted FROM users WHERE id = $1",
      [Number(user!.id)],
    );
    expect(after[0]!.email_encrypted).toEqual(before[0]!.email_encrypted);
    expect(after[0]!.name_encrypted).toEqual(before[0]!.name_encrypted);
    expect(after[0]!.phone_encrypted).not.toEqual(before[0]!.phone_encrypted);
    expect((await viaConnect.getUser({ id: user!.id })).user?.phone).toBe("+4915112345678");
  });

  it("a byte changed in one stored ciphertext fails that user only (DATA_LOSS naming the field)", async () => {
    const one = (await viaConnect.createUser(fresh())).user!;
    const two = (await viaConnect.createUser(fresh())).user!;
    await query(
      ctx.db.url,
      "UPDATE users SET name_encrypted = set_byte(name_encrypted, 20, get_byte(name_encrypted, 20) # 1) WHERE id = $1",
      [Number(one.id)],
    );
    const f = await rejection(viaGrpc.getUser({ id: one.id }));
    expect(f).toMatchObject({
      code: Code.DataLoss,
      reason: "USER_DATA_CORRUPT",
      metadata: { field: "name" },
    });
    expect((await viaGrpc.getUser({ id: two.id })).user?.name).toBe(two.name);
  });

  it("a ciphertext moved to another user's row fails there (DATA_LOSS)", async () => {
    const one = (await viaConnect.createUser(fresh())).user!;
    const two = (await viaConnect.createUser(fresh())).user!;
    await query(
      ctx.db.url,
      "UPDATE users SET email_encrypted = (SELECT email_encrypted FROM users WHERE id = $1) WHERE id = $2",
      [Number(two.id), Number(one.id)],
    );
    expect(await rejection(viaGrpc.getUser({ id: one.id }))).toMatchObject({ code: Code.DataLoss });
  });
});

describe("ListUsers", () => {
  it("pages through the users sharing a name, in id order, with opaque tokens", async () => {
    const ids: bigint[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await viaConnect.createUser(fresh({ name: "Shared  Name " }))).user!.id);
    await viaConnect.createUser(fresh({ name: "Someone Else" }));
    const seen: bigint[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      // The filter goes through the name index: the same normalisation as at creation.
      const page = await viaGrpc.listUsers({ name: " Shared Name", pageSize: 2, pageToken });
      seen.push(...page.users.map((u) => u.id));
      expect(page.users.every((u) => u.name === "Shared  Name")).toBe(true);
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken);
    expect(seen).toEqual(ids);
    expect(pages).toBe(2);
  });

  it("refuses a page token it did not issue with INVALID_PAGE_TOKEN", async () => {
    const f = await rejection(viaGrpc.listUsers({ name: "Someone Else", pageToken: "bogus" }));
    expect(f).toMatchObject({ code: Code.InvalidArgument, reason: "INVALID_PAGE_TOKEN" });
  });
});

describe("VerifyPassword", () => {
  it("answers an unknown login and a wrong password identically", async () => {
    const input = fresh();
    await viaConnect.createUser(input);
    const wrong = await rejection(
      viaGrpc.verifyPassword({ login: input.username, password: "not-the-password1" }),
    );
    const unknown = await rejection(
      viaGrpc.verifyPassword({ login: "nobody_here", password: "not-the-password1" }),
    );
    const unknownEmail = await rejection(
      viaGrpc.verifyPassword({ login: "nobody@example.com", password: "x1x1x1x1" }),
    );
    expect(wrong).toEqual(unknown);
    expect(unknownEmail).toEqual(wrong);
    expect(wrong).toMatchObject({ code: Code.Unauthenticated, reason: "INVALID_CREDENTIALS" });
  });
});

describe("at rest", () => {
  it("no table holds an email, phone, name or password in clear, and no index is an unkeyed SHA-256", async () => {
    const people = [fresh({ name: "Zebulon Quince" }), fresh({ name: "Marisol Ferreira" })];
    for (const p of people) await viaConnect.createUser(p);
    const tables = await query<{ t: string }>(
      ctx.db.url,
      "SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    );
    let dump = "";
    for (const { t } of tables)
      dump += (await query<{ r: string }>(ctx.db.url, `SELECT x::text AS r FROM ${t} AS x`))
        .map((r) => r.r)
        .join("\n");
    const lower = dump.toLowerCase();
    for (const p of people) {
      for (const secret of [p.email, p.phone, p.name, p.password]) {
        expect(lower).not.toContain(secret.toLowerCase());
        expect(lower).not.toContain(Buffer.from(secret).toString("hex"));
        expect(lower).not.toContain(createHash("sha256").update(secret).digest("hex"));
        expect(lower).not.toContain(
          createHash("sha256").update(secret.toLowerCase()).digest("hex"),
        );
      }
    }
  });
});

describe("a revoked key", () => {
  // Last in the file: the active key is revoked for everything after it.
  let old: User;
  let newer: User;
  beforeAll(async () => {
    const kms = kmsClient();
    old = (await viaConnect.createUser(fresh())).user!;
    const version = (await kms.getStatus({})).activeKey!.version;
    await kms.revokeDataKey({ version, reason: "test" });
    newer = (await viaConnect.createUser(fresh())).user!;
  });

  it("makes the users it protects unreadable with FAILED_PRECONDITION (KEY_REVOKED)", async () => {
    expect(await rejection(viaGrpc.getUser({ id: old.id }))).toMatchObject({
      code: Code.FailedPrecondition,
      reason: "KEY_REVOKED",
    });
  });

  it("leaves users under other keys readable", async () => {
    expect((await viaGrpc.getUser({ id: newer.id })).user?.email).toBe(newer.email);
  });

  it("a listing reads every user it can and names the one it cannot, without its data", async () => {
    const listed: bigint[] = [];
    const unreadable: { id: bigint; code: string; reason: string; message: string }[] = [];
    let pageToken = "";
    do {
      const page = await viaGrpc.listUsers({ pageSize: 100, pageToken });
      listed.push(...page.users.map((u) => u.id));
      unreadable.push(...page.unreadable);
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(listed).toContain(newer.id);
    expect(listed).not.toContain(old.id);
    expect(unreadable).toContainEqual(
      expect.objectContaining({ id: old.id, code: "FAILED_PRECONDITION", reason: "KEY_REVOKED" }),
    );
    expect(
      JSON.stringify(unreadable, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v)),
    ).not.toContain(old.email);
  });
});
