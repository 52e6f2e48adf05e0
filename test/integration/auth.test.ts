import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type DescMethodUnary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService, View } from "../../api/user/v1/user_pb.js";
import { allScopes, methodScopes } from "../../internal/server/auth/scopes.js";
import { useTestApp } from "../helpers/app.js";
import { grpcClient } from "../helpers/clients.js";
import { outcome, type Failure } from "../helpers/errors.js";

const dir = mkdtempSync(join(tmpdir(), "kbts-auth-"));
const secret = randomBytes(32);
const ed = generateKeyPairSync("ed25519");
const audience = "kratos-boilerplate-ts";
const token = (name: string) => `${name}-${randomBytes(16).toString("hex")}`;
const tokens = {
  admin: token("admin"),
  reader: token("reader"),
  writer: token("writer"),
  everything: token("everything"),
};
const sha256 = (t: string) => createHash("sha256").update(t).digest("hex");

const methods: { service: typeof KmsService | typeof UserService; method: DescMethodUnary }[] = [
  KmsService,
  UserService,
].flatMap((service) =>
  service.methods.map((method) => ({ service, method: method as DescMethodUnary })),
);
const scopeOf = (m: DescMethodUnary) => methodScopes[`${m.parent.typeName}/${m.name}`]!;

async function jwt(scope: string, expiresIn: string | number, key: "hs" | "ed" = "hs") {
  const builder = new SignJWT({ scope })
    .setSubject("svc-a")
    .setAudience(audience)
    .setIssuedAt()
    .setExpirationTime(expiresIn);
  return key === "hs"
    ? builder.setProtectedHeader({ alg: "HS256" }).sign(secret)
    : builder.setProtectedHeader({ alg: "EdDSA" }).sign(ed.privateKey);
}

// The key files, written before the service starts (hooks run in order).
beforeAll(() => {
  writeFileSync(join(dir, "hs256"), secret);
  writeFileSync(join(dir, "ed.pem"), ed.publicKey.export({ type: "spki", format: "pem" }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ctx = useTestApp({
  config: {
    auth: {
      enabled: true,
      protect_metrics: true,
      tokens: [
        { name: "admin", sha256: sha256(tokens.admin), scopes: ["kms.admin"] },
        { name: "reader", sha256: sha256(tokens.reader), scopes: ["users.read"] },
        { name: "writer", sha256: sha256(tokens.writer).toUpperCase(), scopes: ["users.write"] },
        {
          name: "everything",
          sha256: sha256(tokens.everything),
          scopes: [...allScopes],
        },
      ],
      jwt: {
        audience,
        hs256_secret_file: join(dir, "hs256"),
        public_key_files: [join(dir, "ed.pem")],
      },
    },
  },
});

/** One call with an empty request, on either port: its gRPC code and ErrorInfo (code 0 if it succeeds). */
async function call(port: "grpc" | "http", m: DescMethodUnary, bearer?: string): Promise<Failure> {
  if (port === "grpc") {
    const client = grpcClient(m.parent, ctx.app.grpcPort, bearer);
    try {
      return await outcome(client.unary(m, {}));
    } finally {
      client.close();
    }
  }
  const transport = createConnectTransport({
    baseUrl: `http://127.0.0.1:${ctx.app.httpPort}`,
    httpVersion: "2",
    useBinaryFormat: true,
  });
  const header = new Headers(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` });
  return outcome(transport.unary(m, undefined, 10_000, header, create(m.input)));
}

describe.each(["grpc", "http"] as const)("authentication on the %s port", (port) => {
  it.each(methods.map((m) => ({ name: m.method.name, method: m.method })))(
    "$name: no token, a wrong or unknown token, an expired JWT, a wrong-scope token, then the right one",
    async ({ method }) => {
      const scope = scopeOf(method);
      expect(await call(port, method)).toMatchObject({
        code: Code.Unauthenticated,
        reason: "UNAUTHENTICATED",
        message: "missing bearer token",
      });
      expect(await call(port, method, "not-a-token")).toMatchObject({
        code: Code.Unauthenticated,
        message: "unknown or invalid token",
      });
      expect(
        await call(port, method, await jwt(scope, Math.floor(Date.now() / 1000) - 60)),
      ).toMatchObject({
        code: Code.Unauthenticated,
        message: "token expired",
      });
      const wrong = scope === "kms.admin" ? tokens.reader : tokens.admin;
      expect(await call(port, method, wrong)).toMatchObject({
        code: Code.PermissionDenied,
        reason: "PERMISSION_DENIED",
        message: `missing scope ${scope}`,
        metadata: { scope },
      });
      for (const valid of [
        tokens.everything,
        await jwt(scope, "5m"),
        await jwt(`other ${scope}`, "5m", "ed"),
      ]) {
        const answer = await call(port, method, valid);
        expect([Code.Unauthenticated, Code.PermissionDenied], JSON.stringify(answer)).not.toContain(
          answer.code,
        );
      }
    },
  );
});

describe("authorization", () => {
  it("declares a scope for every method served", () => {
    for (const { method } of methods) expect(scopeOf(method), method.name).toBeDefined();
  });

  it("refuses a JWT for another audience or with a forged signature", async () => {
    const m = KmsService.method.getStatus;
    const other = await new SignJWT({ scope: "kms.admin" })
      .setSubject("x")
      .setAudience("someone-else")
      .setExpirationTime("5m")
      .setProtectedHeader({ alg: "HS256" })
      .sign(secret);
    const forged = await new SignJWT({ scope: "kms.admin" })
      .setSubject("x")
      .setAudience(audience)
      .setExpirationTime("5m")
      .setProtectedHeader({ alg: "HS256" })
      .sign(randomBytes(32));
    const none = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify({ sub: "x", aud: audience, exp: 4e9, scope: "kms.admin" })).toString("base64url")}.`;
    for (const bad of [other, forged, none]) {
      expect(await call("grpc", m, bad)).toMatchObject({ code: Code.Unauthenticated });
    }
  });

  it("masks personal data for a caller without pii.read, whatever view it asks for", async () => {
    const users = grpcClient(UserService, ctx.app.grpcPort, tokens.everything);
    const reader = grpcClient(UserService, ctx.app.grpcPort, tokens.reader);
    try {
      const { user } = await users.unary(UserService.method.createUser, {
        username: "masked_ann",
        password: "passw0rd-long",
        email: "ann@example.com",
      });
      const full = await users.unary(UserService.method.getUser, { id: user!.id, view: View.FULL });
      expect(full.user?.email).toBe("ann@example.com");
      for (const view of [View.FULL, View.UNSPECIFIED, View.MASKED]) {
        const read = await reader.unary(UserService.method.getUser, { id: user!.id, view });
        expect(read.user?.email).not.toContain("ann@");
        expect(read.user?.email).toMatch(/\*/);
      }
      const listed = await reader.unary(UserService.method.listUsers, { view: View.FULL });
      expect(JSON.stringify(listed.users.map((u) => u.email))).not.toContain("ann@");
    } finally {
      users.close();
      reader.close();
    }
  });

  it("keeps health, reflection, /healthz and /readyz open, and /metrics behind metrics.read", async () => {
    const base = `http://127.0.0.1:${ctx.app.httpPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${tokens.admin}` } }))
        .status,
    ).toBe(403);
    const metrics = await fetch(`${base}/metrics`, {
      headers: { authorization: `Bearer ${tokens.everything}` },
    });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/code="UNAUTHENTICATED"/);
    const health = new grpc.Client(
      `127.0.0.1:${ctx.app.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    const status = await new Promise<number>((resolve) =>
      health.makeUnaryRequest(
        "/grpc.health.v1.Health/Check",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (err) => resolve(err?.code ?? 0),
      ),
    );
    health.close();
    expect(status).toBe(grpc.status.OK);
  });
});
