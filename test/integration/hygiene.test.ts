import { create, toBinary } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import type { View } from "../../api/user/v1/user_pb.js";
import { GetUserRequestSchema, UserService } from "../../api/user/v1/user_pb.js";
import { useTestApp } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { rejection } from "../helpers/errors.js";

// Input hygiene: whatever a careless or hostile caller sends, the answer is a
// clear INVALID_ARGUMENT naming the field, never a fallback, never an echo.
const ctx = useTestApp();

const clients = () => ({
  grpc: createClient(
    UserService,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${ctx.app.grpcPort}` }),
  ),
  connect: createClient(
    UserService,
    createConnectTransport({
      baseUrl: `http://127.0.0.1:${ctx.app.httpPort}`,
      httpVersion: "1.1",
      useBinaryFormat: false,
    }),
  ),
});

let serial = 0;
const someone = (over: Record<string, string> = {}) => ({
  username: `hygiene_${++serial}`,
  password: "passw0rd-long",
  email: `h${serial}@example.com`,
  ...over,
});

const post = (path: string, body: Uint8Array | string, contentType = "application/json") =>
  fetch(`http://127.0.0.1:${ctx.app.httpPort}/user.v1.UserService/${path}`, {
    method: "POST",
    headers: { "content-type": contentType },
    body,
  });

describe("input hygiene", () => {
  describe("a view it does not know is refused instead of falling back to FULL", () => {
    let id: bigint;
    beforeAll(async () => {
      const { user } = await clients().connect.createUser(someone({ email: "view@example.com" }));
      id = user!.id;
    });

    it("a misspelt view name in JSON: invalid_argument, the user's data not echoed", async () => {
      const misspelt = await post("GetUser", JSON.stringify({ id: String(id), view: "VIEW_MASK" }));
      expect(misspelt.status).toBe(400);
      const text = await misspelt.text();
      expect(text).not.toContain("view@");
      expect(JSON.parse(text)).toMatchObject({ code: "invalid_argument" });
    });

    it("an unknown view number in binary: invalid_argument naming the view", async () => {
      const binary = toBinary(
        GetUserRequestSchema,
        create(GetUserRequestSchema, { id, view: 7 as View }),
      );
      const unknown = await post("GetUser", binary, "application/proto");
      expect(unknown.status).toBe(400);
      expect(await unknown.json()).toMatchObject({
        code: "invalid_argument",
        message: expect.stringContaining("view"),
      });
    });
  });

  describe.each(["grpc", "connect"] as const)("NUL in any string (%s)", (port) => {
    it("in CreateUser's name: INVALID_ARGUMENT, VALIDATION_FAILED naming name", async () => {
      const users = clients()[port];
      expect(await rejection(users.createUser(someone({ name: "Ann\u0000Lee" })))).toMatchObject({
        code: Code.InvalidArgument,
        reason: "VALIDATION_FAILED",
        metadata: { field: "name" },
      });
    });

    it("in LookupUser's username key: INVALID_ARGUMENT naming username", async () => {
      const users = clients()[port];
      expect(
        await rejection(users.lookupUser({ key: { case: "username", value: "ann\u0000" } })),
      ).toMatchObject({
        code: Code.InvalidArgument,
        metadata: { field: "username" },
      });
    });

    it("in CreateUser's password: refused naming password", async () => {
      const users = clients()[port];
      expect(
        await rejection(users.createUser(someone({ password: "passw0rd\u0000long" }))),
      ).toMatchObject({
        metadata: { field: "password" },
      });
    });
  });

  it("never quotes a submitted value in an error", async () => {
    const { user } = await clients().grpc.createUser(someone());
    const f = await rejection(
      clients().grpc.updateUser({
        id: user!.id,
        email: "victim@example.com",
        updateMask: { paths: ["victim@example.com"] },
      }),
    );
    expect(f).toMatchObject({ code: Code.InvalidArgument, metadata: { field: "update_mask" } });
    expect(f.message).not.toContain("victim");
  });

  describe("usernames are one account whatever their case", () => {
    beforeAll(async () => {
      await clients().grpc.createUser(someone({ username: "caseX" }));
    });

    it.each(["CaseX", "CASEX", "casex"])(
      "refuses %s once caseX exists: ALREADY_EXISTS naming username",
      async (username) => {
        expect(await rejection(clients().grpc.createUser(someone({ username })))).toMatchObject({
          code: Code.AlreadyExists,
          metadata: { field: "username" },
        });
      },
    );

    it("LookupUser in another case finds the account as it was spelt", async () => {
      const found = await clients().grpc.lookupUser({ key: { case: "username", value: "CASEX" } });
      expect(found.user?.username).toBe("caseX");
    });
  });

  describe("page tokens", () => {
    // Three users of one name, listed a page of one at a time.
    let hash: string;
    let first: { id: bigint };
    let token: string;
    beforeAll(async () => {
      // Ids of seven digits: random token bytes cannot hold one by chance.
      await query(ctx.db.url, "SELECT setval(pg_get_serial_sequence('users', 'id'), 1000000)");
      const users = clients().grpc;
      for (let i = 0; i < 3; i++) await users.createUser(someone({ name: "Paged Person" }));
      const page = await users.listUsers({ name: "Paged Person", pageSize: 1 });
      first = page.users[0]!;
      token = page.nextPageToken;
      const [row] = await query<{ name_hash: string }>(
        ctx.db.url,
        "SELECT name_hash FROM users WHERE id = $1",
        [Number(first.id)],
      );
      hash = row!.name_hash;
    });

    it("show neither the name's blind index nor the last id", () => {
      expect(token).not.toBe("");
      const raw = Buffer.from(token, "base64url");
      expect(raw.toString("hex")).not.toContain(hash.slice(0, 16));
      expect(String(first.id)).toHaveLength(7);
      expect(raw.toString("latin1")).not.toContain(String(first.id));
      const position = Buffer.alloc(4);
      position.writeUInt32BE(Number(first.id));
      expect(raw.includes(position)).toBe(false);
    });

    it("continue the listing where the page ended", async () => {
      const next = await clients().grpc.listUsers({
        name: "Paged Person",
        pageSize: 1,
        pageToken: token,
      });
      expect(next.users[0]!.id).toBeGreaterThan(first.id);
    });

    it.each([
      ["a forged token (one byte changed)", "Paged Person", true],
      ["a token replayed for another name", "Someone Else", false],
      ["a token replayed without the name", "", false],
    ] as const)("refuse %s: INVALID_PAGE_TOKEN", async (_what, name, tamper) => {
      let pageToken = token;
      if (tamper) {
        const tampered = Buffer.from(token, "base64url");
        tampered[13]! ^= 1;
        pageToken = tampered.toString("base64url");
      }
      expect(
        await rejection(clients().grpc.listUsers({ name, pageSize: 1, pageToken })),
      ).toMatchObject({
        code: Code.InvalidArgument,
        reason: "INVALID_PAGE_TOKEN",
      });
    });
  });
});
