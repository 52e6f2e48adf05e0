import { create, toBinary } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import type { View } from "../../api/user/v1/user_pb.js";
import { GetUserRequestSchema, UserService } from "../../api/user/v1/user_pb.js";
import { useTestApp } from "../helpers/app.js";
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
  it("refuses a misspelt or unknown view instead of falling back to FULL", async () => {
    const { user } = await clients().connect.createUser(someone({ email: "view@example.com" }));
    const misspelt = await post(
      "GetUser",
      JSON.stringify({ id: String(user!.id), view: "VIEW_MASK" }),
    );
    expect(misspelt.status).toBe(400);
    const text = await misspelt.text();
    expect(text).not.toContain("view@");
    expect(JSON.parse(text)).toMatchObject({ code: "invalid_argument" });
    const binary = toBinary(
      GetUserRequestSchema,
      create(GetUserRequestSchema, { id: user!.id, view: 7 as View }),
    );
    const unknown = await post("GetUser", binary, "application/proto");
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("view"),
    });
  });

  it.each(["grpc", "connect"] as const)(
    "refuses NUL in any string, naming the field (%s)",
    async (port) => {
      const users = clients()[port];
      expect(await rejection(users.createUser(someone({ name: "Ann\u0000Lee" })))).toMatchObject({
        code: Code.InvalidArgument,
        reason: "VALIDATION_FAILED",
        metadata: { field: "name" },
      });
      expect(
        await rejection(users.lookupUser({ key: { case: "username", value: "ann\u0000" } })),
      ).toMatchObject({
        code: Code.InvalidArgument,
        metadata: { field: "username" },
      });
      expect(
        await rejection(users.createUser(someone({ password: "passw0rd\u0000long" }))),
      ).toMatchObject({
        metadata: { field: "password" },
      });
    },
  );

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

  it("treats usernames as one account whatever their case", async () => {
    const users = clients().grpc;
    await users.createUser(someone({ username: "caseX" }));
    for (const username of ["CaseX", "CASEX", "casex"]) {
      expect(await rejection(users.createUser(someone({ username })))).toMatchObject({
        code: Code.AlreadyExists,
        metadata: { field: "username" },
      });
    }
    const found = await users.lookupUser({ key: { case: "username", value: "CASEX" } });
    expect(found.user?.username).toBe("caseX");
  });

  it("issues page tokens that show nothing and cannot be forged or replayed elsewhere", async () => {
    const users = clients().grpc;
    for (let i = 0; i < 3; i++) await users.createUser(someone({ name: "Paged Person" }));
    const kms = createClient(
      KmsService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${ctx.app.grpcPort}` }),
    );
    const { hash } = await kms.hashField({ fieldName: "name", value: "Paged Person" });
    const page = await users.listUsers({ name: "Paged Person", pageSize: 1 });
    const token = page.nextPageToken;
    expect(token).not.toBe("");
    const raw = Buffer.from(token, "base64url");
    expect(raw.toString("hex")).not.toContain(hash.slice(0, 16));
    expect(raw.toString("latin1")).not.toContain(String(page.users[0]!.id));
    const next = await users.listUsers({ name: "Paged Person", pageSize: 1, pageToken: token });
    expect(next.users[0]!.id).toBeGreaterThan(page.users[0]!.id);
    const tampered = Buffer.from(raw);
    tampered[13]! ^= 1;
    for (const [name, pageToken] of [
      ["Paged Person", tampered.toString("base64url")],
      ["Someone Else", token],
      ["", token],
    ] as const) {
      expect(await rejection(users.listUsers({ name, pageSize: 1, pageToken }))).toMatchObject({
        code: Code.InvalidArgument,
        reason: "INVALID_PAGE_TOKEN",
      });
    }
  });
});
