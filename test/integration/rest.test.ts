import { createHash, randomBytes } from "node:crypto";
import { toJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { errorFromJson } from "@connectrpc/connect/protocol-connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, describe, expect, it, vi } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService, View } from "../../api/user/v1/user_pb.js";
import { restBindings } from "../../internal/server/rest/bindings.js";
import { useTestApp } from "../helpers/app.js";
import { failureOf, type Failure } from "../helpers/errors.js";

// Every google.api.http route, by a plain HTTP client (fetch), against its
// Connect twin on the same port: the same JSON for the same call, the same
// code and reason for the same failure, through the same chain (a token
// checked, a scope required, validation).

const token = randomBytes(16).toString("hex");
const readerToken = randomBytes(16).toString("hex");
const sha256 = (t: string) => createHash("sha256").update(t).digest("hex");
const ctx = useTestApp({
  config: {
    auth: {
      enabled: true,
      tokens: [
        {
          name: "ops",
          sha256: sha256(token),
          scopes: [
            "users.read",
            "users.write",
            "users.login",
            "pii.read",
            "kms.admin",
            "kms.crypto",
          ],
        },
        { name: "reader", sha256: sha256(readerToken), scopes: ["users.read"] },
      ],
    },
  },
});

const base = () => `http://127.0.0.1:${ctx.app.httpPort}`;
const bearer =
  (t: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${t}`);
    return next(req);
  };
const twins = (t = token) => {
  const transport = createConnectTransport({
    baseUrl: base(),
    httpVersion: "1.1",
    interceptors: [bearer(t)],
  });
  return { users: createClient(UserService, transport), kms: createClient(KmsService, transport) };
};

// Each route the test calls, to hold it to every route the protos declare.
const called = new Set<string>();
afterAll(() => {
  const declared = restBindings(
    [UserService, KmsService].flatMap((service) =>
      service.methods.map((method) => ({ service, method, handler: async () => method.output })),
    ) as never,
  ).map((b) => `${b.httpMethod} ${b.template.text}`);
  expect([...called].sort()).toEqual(declared.sort());
});

interface Answer {
  status: number;
  json: JsonValue;
}

/**
 * `route` ("GET /v1/users/{id}") with its variables filled from `path`,
 * `query` as the query string and `body` as JSON, with `t` as the token
 * (none when null).
 */
async function rest(
  route: string,
  {
    path = {},
    query,
    body,
    t = token,
  }: {
    path?: Record<string, string | number>;
    query?: Record<string, string>;
    body?: unknown;
    t?: string | null;
  } = {},
): Promise<Answer> {
  called.add(route);
  const [method, template] = route.split(" ") as [string, string];
  const url = new URL(
    template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(String(path[name]))),
    base(),
  );
  for (const [k, v] of Object.entries(query ?? {})) url.searchParams.append(k, v);
  const headers: Record<string, string> = {};
  if (t !== null) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as JsonValue };
}

const json = <D extends DescMessage>(schema: D, message: MessageShape<D>) =>
  toJson(schema, message);

/** A REST error answer as the failure a Connect client sees. */
function restFailure(a: Answer): Failure {
  expect(a.status, JSON.stringify(a.json)).toBeGreaterThanOrEqual(400);
  return failureOf(errorFromJson(a.json, undefined, new ConnectError("not an error")));
}

const twinFailure = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error("the Connect twin succeeded");
    },
    (err: unknown) => failureOf(err),
  );

const same = (a: Failure, b: Failure) => {
  expect([a.code, a.reason, a.domain, a.message]).toEqual([b.code, b.reason, b.domain, b.message]);
};

const alice = {
  username: "alice_rest",
  password: "passw0rd-long",
  email: "alice.rest@example.com",
  phone: "+8613800138000",
  name: "Alice Rest",
};

describe("UserService over REST", () => {
  let id = "";

  it("creates, reads (full and masked), looks up, lists and searches as its Connect twin", async () => {
    const { users } = twins();
    const created = await rest("POST /v1/users", { body: alice });
    expect(created.status, JSON.stringify(created.json)).toBe(200);
    id = (created.json as { user: { id: string } }).user.id;
    const full = await users.getUser({ id: BigInt(id) });
    expect(created.json).toEqual(json(UserService.method.getUser.output, full));

    expect((await rest("GET /v1/users/{id}", { path: { id } })).json).toEqual(
      json(UserService.method.getUser.output, full),
    );
    const masked = await rest("GET /v1/users/{id}", {
      path: { id },
      query: { view: "VIEW_MASKED" },
    });
    expect(masked.json).toEqual(
      json(
        UserService.method.getUser.output,
        await users.getUser({ id: BigInt(id), view: View.MASKED }),
      ),
    );
    expect(JSON.stringify(masked.json)).not.toContain(alice.email);
    // An enum by number too, as proto3 JSON allows.
    expect((await rest("GET /v1/users/{id}", { path: { id }, query: { view: "2" } })).json).toEqual(
      masked.json,
    );

    const found = await rest("POST /v1/users:lookup", {
      body: { email: " ALICE.rest@example.com" },
    });
    expect(found.json).toEqual(
      json(
        UserService.method.lookupUser.output,
        await users.lookupUser({ key: { case: "email", value: alice.email } }),
      ),
    );

    const page = await rest("GET /v1/users", { query: { page_size: "10", view: "VIEW_MASKED" } });
    expect(page.json).toEqual(
      json(
        UserService.method.listUsers.output,
        await users.listUsers({ pageSize: 10, view: View.MASKED }),
      ),
    );
    const byName = await rest("POST /v1/users:search", { body: { name: alice.name } });
    expect(byName.json).toEqual(
      json(UserService.method.listUsers.output, await users.listUsers({ name: alice.name })),
    );
    expect((byName.json as { users: unknown[] }).users).toHaveLength(1);
  });

  it("updates through the mask in the body, and checks a password", async () => {
    const { users } = twins();
    const updated = await rest("PATCH /v1/users/{id}", {
      path: { id },
      body: { phone: "+8613900139000", updateMask: "phone" },
    });
    expect(updated.status, JSON.stringify(updated.json)).toBe(200);
    expect(updated.json).toEqual(
      json(UserService.method.getUser.output, await users.getUser({ id: BigInt(id) })),
    );
    expect((updated.json as { user: { phone: string } }).user.phone).toBe("+8613900139000");

    const ok = await rest("POST /v1/users:verifyPassword", {
      body: { login: alice.username, password: alice.password },
    });
    expect(ok.json).toEqual(
      json(
        UserService.method.verifyPassword.output,
        await users.verifyPassword({ login: alice.username, password: alice.password }),
      ),
    );
    same(
      restFailure(
        await rest("POST /v1/users:verifyPassword", {
          body: { login: alice.username, password: "wrong-pass1" },
        }),
      ),
      await twinFailure(users.verifyPassword({ login: alice.username, password: "wrong-pass1" })),
    );
  });

  it("answers failures with the code, reason and message its twin gets", async () => {
    const { users } = twins();
    same(
      restFailure(await rest("GET /v1/users/{id}", { path: { id: 0 } })),
      await twinFailure(users.getUser({ id: 0n })),
    );
    same(
      restFailure(await rest("GET /v1/users/{id}", { path: { id: 987654 } })),
      await twinFailure(users.getUser({ id: 987654n })),
    );
    same(
      restFailure(await rest("POST /v1/users", { body: { ...alice, email: "not-an-address" } })),
      await twinFailure(users.createUser({ ...alice, email: "not-an-address" })),
    );
    same(
      restFailure(await rest("POST /v1/users", { body: alice })),
      await twinFailure(users.createUser(alice)),
    );
    // Without a token, and with one that lacks the scope.
    same(
      restFailure(await rest("GET /v1/users/{id}", { path: { id }, t: null })),
      await twinFailure(
        createClient(
          UserService,
          createConnectTransport({ baseUrl: base(), httpVersion: "1.1" }),
        ).getUser({
          id: BigInt(id),
        }),
      ),
    );
    same(
      restFailure(await rest("DELETE /v1/users/{id}", { path: { id }, t: readerToken })),
      await twinFailure(twins(readerToken).users.deleteUser({ id: BigInt(id) })),
    );
    // A reader without pii.read asking for everything sees it masked.
    const asReader = await rest("GET /v1/users/{id}", { path: { id }, t: readerToken });
    expect(JSON.stringify(asReader.json)).not.toContain(alice.name);
  });

  it("names the path variable, query parameter or body it cannot take, never its value", async () => {
    const bad = async (answer: Promise<Answer>, field: string, message: RegExp) => {
      const a = await answer;
      expect(a.status).toBe(400);
      const f = restFailure(a);
      expect([f.reason, f.metadata.field]).toEqual(["VALIDATION_FAILED", field]);
      expect(f.message).toMatch(message);
      return f;
    };
    await bad(
      rest("GET /v1/users/{id}", { path: { id: "12ab" } }),
      "id",
      /^path variable id: not a valid int64$/,
    );
    await bad(
      rest("GET /v1/users/{id}", { path: { id }, query: { view: "VIEW_FULLL" } }),
      "view",
      /^query parameter view: not a valid user\.v1\.View \(one of VIEW_UNSPECIFIED, VIEW_FULL, VIEW_MASKED\)$/,
    );
    await bad(rest("GET /v1/users", { query: { page_sise: "1" } }), "page_sise", /no such field/);
    await bad(
      rest("POST /v1/users:lookup", { query: { email: alice.email }, body: {} }),
      "email",
      /this route takes its fields in the body/,
    );
    await bad(
      rest("PATCH /v1/users/{id}", {
        path: { id },
        body: { id: String(Number(id) + 1), name: "X", updateMask: "name" },
      }),
      "id",
      /the body gives id another value/,
    );
    const secret = "s3cret-value@example.com";
    const f = await bad(
      rest("POST /v1/users", { body: { ...alice, emial: secret } }),
      "body",
      /^the body is not a valid user\.v1\.CreateUserRequest$/,
    );
    expect(JSON.stringify(f)).not.toContain(secret);
    const raw = await fetch(new URL("/v1/users", base()), {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: "{not json",
    });
    expect(raw.status).toBe(400);
    const notAllowed = await fetch(new URL("/v1/users", base()), { method: "PUT" });
    expect([notAllowed.status, notAllowed.headers.get("allow")]).toEqual([405, "POST, GET"]);
  });

  it("deletes, then answers NOT_FOUND as its twin", async () => {
    expect((await rest("DELETE /v1/users/{id}", { path: { id } })).json).toEqual({});
    same(
      restFailure(await rest("GET /v1/users/{id}", { path: { id } })),
      await twinFailure(twins().users.getUser({ id: BigInt(id) })),
    );
  });
});

describe("KmsService over REST", () => {
  it("reads the status, the keys and one key as its twin", async () => {
    const { kms } = twins();
    const out = KmsService.method;
    expect((await rest("GET /v1/kms/status")).json).toEqual(
      json(out.getStatus.output, await kms.getStatus({})),
    );
    expect((await rest("GET /v1/kms/keys", { query: { page_size: "5" } })).json).toEqual(
      json(out.listDataKeys.output, await kms.listDataKeys({ pageSize: 5 })),
    );
    expect((await rest("GET /v1/kms/keys/{version}", { path: { version: 1 } })).json).toEqual(
      json(out.getDataKey.output, await kms.getDataKey({ version: 1 })),
    );
    same(
      restFailure(await rest("GET /v1/kms/keys/{version}", { path: { version: 99 } })),
      await twinFailure(kms.getDataKey({ version: 99 })),
    );
  });

  it("seals, opens and hashes: bytes as base64, both ways", async () => {
    const { kms } = twins();
    const plaintext = Buffer.from("a note");
    const sealed = await rest("POST /v1/kms:encrypt", {
      body: {
        fieldName: "notes.text",
        plaintext: plaintext.toString("base64"),
        context: Buffer.from("row-1").toString("base64"),
      },
    });
    expect(sealed.status, JSON.stringify(sealed.json)).toBe(200);
    const ciphertext = (sealed.json as { ciphertext: string }).ciphertext;
    const opened = await kms.decryptField({
      fieldName: "notes.text",
      ciphertext: Buffer.from(ciphertext, "base64"),
      context: Buffer.from("row-1"),
    });
    expect(Buffer.from(opened.plaintext)).toEqual(plaintext);
    const back = await rest("POST /v1/kms:decrypt", {
      body: {
        fieldName: "notes.text",
        ciphertext,
        context: Buffer.from("row-1").toString("base64"),
      },
    });
    expect(back.json).toEqual(json(KmsService.method.decryptField.output, opened));
    expect(
      (await rest("POST /v1/kms:hash", { body: { fieldName: "email", value: "A@B.example" } }))
        .json,
    ).toEqual(
      json(
        KmsService.method.hashField.output,
        await kms.hashField({ fieldName: "email", value: "A@B.example" }),
      ),
    );
  });

  it("rotates and revokes keys, runs maintenance, as its twin reads back", async () => {
    const { kms } = twins();
    const rotated = await rest("POST /v1/kms/keys:rotate", { body: { reason: "rest test" } });
    expect(rotated.status, JSON.stringify(rotated.json)).toBe(200);
    const version = (rotated.json as { key: { version: number } }).key.version;
    const key = (m: JsonValue) => (m as { key: unknown }).key;
    expect(key(rotated.json)).toEqual(
      key(json(KmsService.method.getDataKey.output, await kms.getDataKey({ version }))),
    );
    const revoked = await rest("POST /v1/kms/keys/{version}:revoke", {
      path: { version: 1 },
      body: { reason: "rest test" },
    });
    expect(revoked.status, JSON.stringify(revoked.json)).toBe(200);
    expect((revoked.json as { key: { status: string } }).key.status).toBe("KEY_STATUS_REVOKED");
    expect((await kms.getDataKey({ version: 1 })).key?.status).toBe(4);
    const maintained = await rest("POST /v1/kms:runMaintenance", { body: {} });
    expect(maintained.status, JSON.stringify(maintained.json)).toBe(200);
  });

  it("starts, reads and stops re-encryption and the index-key rotation", async () => {
    const { kms } = twins();
    const started = await rest("POST /v1/kms/reencryption:start", { body: { batchSize: 10 } });
    expect(started.status, JSON.stringify(started.json)).toBe(200);
    const status = await rest("GET /v1/kms/reencryption");
    expect(status.status).toBe(200);
    expect(Object.keys(status.json as object)).toEqual(["status"]);
    const stopped = await rest("POST /v1/kms/reencryption:stop", { body: {} });
    expect(stopped.status, JSON.stringify(stopped.json)).toBe(200);
    // It stops after its batch in hand: compared once it has.
    const state = async (route: string) =>
      ((await rest(route)).json as { status: { state: string } }).status.state;
    const settled = { timeout: 30_000, interval: 100 };
    await vi.waitFor(
      async () =>
        expect(await state("GET /v1/kms/reencryption")).not.toBe("REENCRYPTION_STATE_RUNNING"),
      settled,
    );
    expect((await rest("GET /v1/kms/reencryption")).json).toEqual(
      json(KmsService.method.getReencryptionStatus.output, await kms.getReencryptionStatus({})),
    );
    const rotation = await rest("POST /v1/kms/indexKey:rotate", { body: { batchSize: 50 } });
    expect(rotation.status, JSON.stringify(rotation.json)).toBe(200);
    // To its end: its events are in the trail the next test compares.
    await vi.waitFor(
      async () =>
        expect(await state("GET /v1/kms/indexKey/rotation")).toBe(
          "INDEX_KEY_ROTATION_STATE_FINISHED",
        ),
      settled,
    );
  });

  it("the root key and the audit trail: the same answers as its twin", async () => {
    const { kms } = twins();
    const root = await rest("POST /v1/kms/rootKey:rotate", { body: {} });
    expect(root.json).toEqual(
      json(KmsService.method.rotateRootKey.output, await kms.rotateRootKey({})),
    );
    // Page tokens are sealed afresh each time: the events are the same.
    const events = await rest("GET /v1/kms/auditEvents", { query: { page_size: "3" } });
    const eventsOf = (j: JsonValue) => (j as { events: unknown[] }).events;
    expect(eventsOf(events.json)).toEqual(
      eventsOf(
        json(KmsService.method.listAuditEvents.output, await kms.listAuditEvents({ pageSize: 3 })),
      ),
    );
    expect(eventsOf(events.json)).toHaveLength(3);
    const verified = await rest("POST /v1/kms/auditEvents:verify", { body: {} });
    expect((verified.json as { intact: boolean }).intact).toBe(true);
  });
});
