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
import { grpcClient, reflectOn } from "../helpers/clients.js";
import { outcome, type Failure } from "../helpers/errors.js";

const dir = mkdtempSync(join(tmpdir(), "kbts-auth-"));
// Printable, so the secret-file rule (one final newline dropped) never shortens it.
const secret = Buffer.from(randomBytes(32).toString("base64url"));
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
        clock_tolerance: "30s",
      },
    },
    // Every kind of caller here calls from 127.0.0.1, about 200 of them
    // refused: more than the default burst of failed authentications one
    // address may make (auth_flood.test.ts tests that limit).
    limits: { auth_failure_burst: 1000 },
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
  describe.each(methods.map((m) => ({ name: m.method.name, method: m.method })))(
    "$name",
    ({ method }) => {
      const scope = scopeOf(method);

      it("refuses a call without a token: UNAUTHENTICATED, missing bearer token", async () => {
        expect(await call(port, method)).toMatchObject({
          code: Code.Unauthenticated,
          reason: "UNAUTHENTICATED",
          message: "missing bearer token",
        });
      });

      it("refuses an unknown token: UNAUTHENTICATED, unknown or invalid token", async () => {
        expect(await call(port, method, "not-a-token")).toMatchObject({
          code: Code.Unauthenticated,
          message: "unknown or invalid token",
        });
      });

      it("refuses an expired JWT: UNAUTHENTICATED, token expired", async () => {
        expect(
          await call(port, method, await jwt(scope, Math.floor(Date.now() / 1000) - 60)),
        ).toMatchObject({
          code: Code.Unauthenticated,
          message: "token expired",
        });
      });

      it("refuses a token without the method's scope: PERMISSION_DENIED naming the scope", async () => {
        const wrong = scope === "kms.admin" ? tokens.reader : tokens.admin;
        expect(await call(port, method, wrong)).toMatchObject({
          code: Code.PermissionDenied,
          reason: "PERMISSION_DENIED",
          message: `missing scope ${scope}`,
          metadata: { scope },
        });
      });

      it.each([
        ["a static token with every scope", () => Promise.resolve(tokens.everything)],
        ["an HS256 JWT with the scope", () => jwt(scope, "5m")],
        ["an EdDSA JWT whose scopes include it", () => jwt(`other ${scope}`, "5m", "ed")],
      ])("lets %s through", async (_what, credential) => {
        const answer = await call(port, method, await credential());
        expect([Code.Unauthenticated, Code.PermissionDenied], JSON.stringify(answer)).not.toContain(
          answer.code,
        );
      });
    },
  );
});

describe("authorization", () => {
  it("declares a scope for every method served", () => {
    for (const { method } of methods) expect(scopeOf(method), method.name).toBeDefined();
  });

  it.each([
    [
      "for another audience",
      () =>
        new SignJWT({ scope: "kms.admin" })
          .setSubject("x")
          .setAudience("someone-else")
          .setExpirationTime("5m")
          .setProtectedHeader({ alg: "HS256" })
          .sign(secret),
    ],
    [
      "with a forged signature",
      () =>
        new SignJWT({ scope: "kms.admin" })
          .setSubject("x")
          .setAudience(audience)
          .setExpirationTime("5m")
          .setProtectedHeader({ alg: "HS256" })
          .sign(randomBytes(32)),
    ],
    [
      "signed with alg none",
      async () =>
        `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify({ sub: "x", aud: audience, exp: 4e9, scope: "kms.admin" })).toString("base64url")}.`,
    ],
  ])("refuses a JWT %s: UNAUTHENTICATED", async (_what, bad) => {
    expect(await call("grpc", KmsService.method.getStatus, await bad())).toMatchObject({
      code: Code.Unauthenticated,
    });
  });
});

describe("strict tokens", () => {
  const now = () => Math.floor(Date.now() / 1000);
  const hour = 3600;
  /** An HS256 JWT with the right audience and key and kms.admin, its claims as given (raw: not checked by jose's builder). */
  const signed = (claims: Record<string, unknown>) =>
    new SignJWT({ aud: audience, scope: "kms.admin", ...claims })
      .setProtectedHeader({ alg: "HS256" })
      .sign(secret);
  const fresh = () => ({ sub: "svc-a", iat: now(), exp: now() + 300 });
  const badSubject = "token sub must be a non-empty string of at most 256 bytes";

  describe.each(["grpc", "http"] as const)("on the %s port", (port) => {
    const getStatus = (bearer: string) => call(port, KmsService.method.getStatus, bearer);

    it.each([
      ["an object", { a: 1 }],
      ["empty", ""],
      ["a number", 7],
      ["over 256 bytes", "é".repeat(129)],
      ["holding a control character", "svc\nforged-line"],
    ])("refuses a JWT whose sub is %s: UNAUTHENTICATED naming sub", async (_what, sub) => {
      expect(await getStatus(await signed({ ...fresh(), sub }))).toMatchObject({
        code: Code.Unauthenticated,
        reason: "UNAUTHENTICATED",
        message: badSubject,
      });
    });

    it("accepts a sub of exactly 256 bytes", async () => {
      expect(await getStatus(await signed({ ...fresh(), sub: "é".repeat(128) }))).toMatchObject({
        code: 0,
      });
    });

    it("refuses a JWT issued an hour in the future: UNAUTHENTICATED naming iat", async () => {
      const iat = now() + hour;
      expect(await getStatus(await signed({ sub: "svc-a", iat, exp: iat + 300 }))).toMatchObject({
        code: Code.Unauthenticated,
        message: "token iat is in the future",
      });
    });

    it("accepts a JWT issued within the clock tolerance (30 s) ahead", async () => {
      const iat = now() + 20;
      expect(await getStatus(await signed({ sub: "svc-a", iat, exp: iat + 300 }))).toMatchObject({
        code: 0,
      });
    });

    it.each([
      ["expiring in the year 33658", () => 1_000_000_000_000],
      ["living 24 h and one second", (iat: number) => iat + 24 * hour + 1],
    ])("refuses a JWT %s: UNAUTHENTICATED, lifetime over the maximum", async (_what, expOf) => {
      const iat = now();
      expect(await getStatus(await signed({ sub: "svc-a", iat, exp: expOf(iat) }))).toMatchObject({
        code: Code.Unauthenticated,
        message: "token lifetime (exp - iat) over the maximum allowed",
      });
    });

    it("accepts a JWT living exactly 24 h (the default maximum)", async () => {
      const iat = now();
      expect(
        await getStatus(await signed({ sub: "svc-a", iat, exp: iat + 24 * hour })),
      ).toMatchObject({ code: 0 });
    });

    it("refuses a JWT once it expires, though it was accepted (and kept) just before", async () => {
      // Expired 26 s ago: within the 30 s tolerance for some 4 s more.
      const exp = now() - 26;
      const token = await signed({ sub: "svc-a", iat: exp - 60, exp });
      expect(await getStatus(token)).toMatchObject({ code: 0 });
      expect(await getStatus(token)).toMatchObject({ code: 0 });
      // jose's clock is in whole seconds: past exp + tolerance once it reads exp + 30.
      while (Date.now() < (exp + 30) * 1000) await new Promise((r) => setTimeout(r, 50));
      expect(await getStatus(token)).toMatchObject({
        code: Code.Unauthenticated,
        message: "token expired",
      });
    });

    it("refuses a JWT without iat: its lifetime cannot be bounded", async () => {
      expect(await getStatus(await signed({ sub: "svc-a", exp: now() + 300 }))).toMatchObject({
        code: Code.Unauthenticated,
        message: "token has no iat: required to bound its lifetime",
      });
    });

    it.each([
      ["just over 8 KiB", 8193 - "Bearer ".length],
      // The most HTTP/2 lets a header list carry (64 KiB) is answered the
      // same way; beyond it, the HTTP/2 layer resets the stream itself.
      ["of 60 KB", 60_000],
    ])("refuses a bearer token %s: UNAUTHENTICATED, bearer token too large", async (_what, n) => {
      expect(await getStatus(randomBytes(n).toString("base64url").slice(0, n))).toMatchObject({
        code: Code.Unauthenticated,
        reason: "UNAUTHENTICATED",
        message: "bearer token too large",
      });
    });

    it("refuses a validly signed JWT over 8 KiB as too large", async () => {
      const big = await signed({ ...fresh(), padding: "p".repeat(9000) });
      expect(await getStatus(big)).toMatchObject({
        code: Code.Unauthenticated,
        message: "bearer token too large",
      });
    });

    it("refuses a forged JWT breaking those rules as any forgery: unknown or invalid token", async () => {
      const forged = await new SignJWT({ aud: audience, sub: "", iat: now() + hour, exp: 1e12 })
        .setProtectedHeader({ alg: "HS256" })
        .sign(randomBytes(32));
      expect(await getStatus(forged)).toMatchObject({
        code: Code.Unauthenticated,
        message: "unknown or invalid token",
      });
    });
  });
});

describe("personal data and pii.read", () => {
  let id: bigint;
  beforeAll(async () => {
    const users = grpcClient(UserService, ctx.app.grpcPort, tokens.everything);
    try {
      const { user } = await users.unary(UserService.method.createUser, {
        username: "masked_ann",
        password: "passw0rd-long",
        email: "ann@example.com",
      });
      id = user!.id;
    } finally {
      users.close();
    }
  });
  const asReader = async <T>(fn: (reader: ReturnType<typeof grpcClient>) => Promise<T>) => {
    const reader = grpcClient(UserService, ctx.app.grpcPort, tokens.reader);
    try {
      return await fn(reader);
    } finally {
      reader.close();
    }
  };

  it("a caller with pii.read reads the email in full", async () => {
    const users = grpcClient(UserService, ctx.app.grpcPort, tokens.everything);
    try {
      const full = await users.unary(UserService.method.getUser, { id, view: View.FULL });
      expect(full.user?.email).toBe("ann@example.com");
    } finally {
      users.close();
    }
  });

  it.each([
    ["FULL", View.FULL],
    ["UNSPECIFIED", View.UNSPECIFIED],
    ["MASKED", View.MASKED],
  ])(
    "a caller without pii.read reads a masked email from GetUser with view %s",
    async (_name, view) => {
      const read = await asReader((r) => r.unary(UserService.method.getUser, { id, view }));
      expect(read.user?.email).not.toContain("ann@");
      expect(read.user?.email).toMatch(/\*/);
    },
  );

  it("a caller without pii.read reads masked emails from ListUsers, even asking for the FULL view", async () => {
    const listed = await asReader((r) =>
      r.unary(UserService.method.listUsers, { view: View.FULL }),
    );
    expect(JSON.stringify(listed.users.map((u) => u.email))).not.toContain("ann@");
  });
});

describe("open and protected endpoints", () => {
  const base = () => `http://127.0.0.1:${ctx.app.httpPort}`;
  const metrics = (token?: string) =>
    fetch(`${base()}/metrics`, {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    });

  it.each(["/healthz", "/readyz"])("keeps %s open: 200 without a token", async (path) => {
    expect((await fetch(`${base()}${path}`)).status).toBe(200);
  });

  it("keeps /metrics behind a token: 401 without one", async () => {
    expect((await metrics()).status).toBe(401);
  });

  it("keeps /metrics behind metrics.read: 403 for a token without it", async () => {
    expect((await metrics(tokens.admin)).status).toBe(403);
  });

  it("serves /metrics with metrics.read, refused calls counted", async () => {
    const answer = await metrics(tokens.everything);
    expect(answer.status).toBe(200);
    expect(await answer.text()).toMatch(/code="UNAUTHENTICATED"/);
  });

  it("keeps grpc.health.v1 open: OK without a token", async () => {
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

  it("keeps reflection open: it lists the services without a token", async () => {
    const [res] = await reflectOn(ctx.app.grpcPort, "grpc.reflection.v1.ServerReflection", [
      { messageRequest: { case: "listServices", value: "" } },
    ]);
    expect(res?.messageResponse.case).toBe("listServicesResponse");
  });
});
