import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";
import { request } from "node:http";
import { connect } from "node:net";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import type { App } from "../../cmd/server/wire.js";
import { useTestApps } from "../helpers/app.js";
import { outcome, type Failure } from "../helpers/errors.js";

// Every loopback address reaches the service's 127.0.0.1: each test plays
// its peers from addresses of its own, so that no count carries over.
const ctx = useTestApps();
const admin = randomBytes(16).toString("hex");
const burst = 5;
const config = {
  auth: {
    enabled: true,
    tokens: [
      {
        name: "admin",
        sha256: createHash("sha256").update(admin).digest("hex"),
        scopes: ["kms.admin"],
      },
    ],
  },
  // One failure a minute after the burst: an address that spent it stays
  // closed far longer than any test here takes.
  limits: { auth_failures_per_minute: 1, auth_failure_burst: burst },
};

/** GetStatus from `from` on `port`, with `token` (none when undefined). */
function getStatus(
  app: App,
  port: "grpc" | "http",
  from: string,
  token: string | undefined,
): Promise<Failure> {
  const options = {
    baseUrl: `http://127.0.0.1:${port === "grpc" ? app.grpcPort : app.httpPort}`,
    httpVersion: "2" as const,
    nodeOptions: {
      createConnection: (authority: URL) =>
        connect({ host: authority.hostname, port: Number(authority.port), localAddress: from }),
    },
  };
  const transport =
    port === "grpc" ? createGrpcTransport(options) : createConnectTransport(options);
  const headers = token === undefined ? {} : { authorization: `Bearer ${token}` };
  return outcome(createClient(KmsService, transport).getStatus({}, { headers }));
}

const codes = (answers: Failure[]) => answers.map((a) => a.code);

describe.each(["grpc", "http"] as const)("failed authentications per address, %s port", (port) => {
  const [flooder, neighbour] =
    port === "grpc" ? ["127.0.0.2", "127.0.0.3"] : ["127.0.0.4", "127.0.0.5"];

  it("When one address sends 30 calls with missing or bad tokens, Then past the burst they are refused RESOURCE_EXHAUSTED with RetryInfo, while a configured token from it and another address are served", async () => {
    // Arrange
    const app = await ctx.start(config);

    // Act
    const flood: Failure[] = [];
    for (let i = 0; i < 30; i++) {
      flood.push(await getStatus(app, port, flooder, i % 2 ? "not-a-token" : undefined));
    }
    const validFromFlooder = await getStatus(app, port, flooder, admin);
    const validFromNeighbour = await getStatus(app, port, neighbour, admin);
    const badFromNeighbour = await getStatus(app, port, neighbour, "not-a-token");

    // Assert
    expect(codes(flood.slice(0, burst))).toEqual(Array(burst).fill(Code.Unauthenticated));
    for (const refused of flood.slice(burst)) {
      expect(refused).toMatchObject({
        code: Code.ResourceExhausted,
        reason: "RATE_LIMITED",
        message: "too many failed authentications from this address; retry later",
      });
      expect(refused.retryMs).toBeGreaterThan(0);
      expect(refused.retryMs).toBeLessThanOrEqual(60_000);
    }
    // A configured token costs a lookup: a caller sharing the address (a
    // proxy, a NAT) with the flood is still served.
    expect(validFromFlooder.code).toBe(0);
    expect(validFromNeighbour.code).toBe(0);
    expect(badFromNeighbour).toMatchObject({
      code: Code.Unauthenticated,
      message: "unknown or invalid token",
    });
  });

  it("When one address makes many calls with a valid token, Then none of them counts against it", async () => {
    // Arrange
    const app = await ctx.start(config);

    // Act
    const answers: Failure[] = [];
    for (let i = 0; i < 4 * burst; i++) answers.push(await getStatus(app, port, flooder, admin));
    const bad = await getStatus(app, port, flooder, "not-a-token");

    // Assert
    expect(codes(answers)).toEqual(Array(4 * burst).fill(0));
    expect(bad.code).toBe(Code.Unauthenticated);
  });
});

describe("failed authentications per address, both ports", () => {
  it("When an address spends its burst on one port, Then the other port refuses it too", async () => {
    // Arrange
    const app = await ctx.start(config);
    const from = "127.0.0.6";

    // Act
    for (let i = 0; i <= burst; i++) await getStatus(app, "grpc", from, "not-a-token");
    const onHttp = await getStatus(app, "http", from, "not-a-token");

    // Assert
    expect(onHttp).toMatchObject({ code: Code.ResourceExhausted, reason: "RATE_LIMITED" });
  });

  it("When an address floods malformed requests without a token, Then they are counted and refused as any other", async () => {
    // Arrange
    const app = await ctx.start(config);
    const post = () =>
      new Promise<{ status: number; code: string }>((resolve, reject) => {
        const req = request(
          {
            host: "127.0.0.1",
            port: app.httpPort,
            localAddress: "127.0.0.8",
            method: "POST",
            path: `/${KmsService.typeName}/${KmsService.method.getStatus.name}`,
            headers: { "content-type": "application/json" },
          },
          (res) => {
            let body = "";
            res.on("data", (chunk: Buffer) => (body += chunk.toString()));
            res.on("end", () =>
              resolve({
                status: res.statusCode!,
                code: (JSON.parse(body) as { code: string }).code,
              }),
            );
          },
        );
        req.on("error", reject);
        req.end("{not json");
      });

    // Act
    const answers = [];
    for (let i = 0; i < 3 * burst; i++) answers.push(await post());

    // Assert
    expect(answers.slice(0, burst).map((a) => a.code)).toEqual(
      Array(burst).fill("unauthenticated"),
    );
    expect(answers.slice(burst)).toEqual(
      Array(2 * burst).fill({ status: 429, code: "resource_exhausted" }),
    );
  });

  it("When the limits are the defaults, Then 40 calls without a token from one address are refused past the first 20", async () => {
    // Arrange
    const app = await ctx.start({ auth: config.auth });

    // Act
    const flood: Failure[] = [];
    for (let i = 0; i < 40; i++) flood.push(await getStatus(app, "grpc", "127.0.0.9", undefined));

    // Assert: 20 at once, then one a second (the 20 more take far less than 20 s).
    expect(codes(flood.slice(0, 20))).toEqual(Array(20).fill(Code.Unauthenticated));
    expect(codes(flood.slice(20))).toContain(Code.ResourceExhausted);
  });

  it("When the limit is 0, Then a flood of bad tokens is answered UNAUTHENTICATED throughout", async () => {
    // Arrange
    const app = await ctx.start({ ...config, limits: { auth_failures_per_minute: 0 } });

    // Act
    const flood: Failure[] = [];
    for (let i = 0; i < 3 * burst; i++) {
      flood.push(await getStatus(app, "grpc", "127.0.0.7", "not-a-token"));
    }

    // Assert
    expect(codes(flood)).toEqual(Array(3 * burst).fill(Code.Unauthenticated));
  });

  it("When an address past its limit brings a valid JWT, Then it is refused unverified, while the same JWT from another address is served", async () => {
    // Arrange
    // Printable, so the secret-file rule (one final newline dropped) never shortens it.
    const secret = Buffer.from(randomBytes(32).toString("base64url"));
    const file = join(mkdtempSync(join(tmpdir(), "flood-jwt-")), "hs256");
    writeFileSync(file, secret);
    const app = await ctx.start({
      ...config,
      auth: { ...config.auth, jwt: { audience: "kms", hs256_secret_file: file } },
    });
    const token = await new SignJWT({ scope: "kms.admin" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("svc")
      .setAudience("kms")
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(secret);

    // Act
    for (let i = 0; i < burst + 1; i++) await getStatus(app, "grpc", "127.0.0.10", "bad");
    const fromFlooder = await getStatus(app, "grpc", "127.0.0.10", token);
    const fromNeighbour = await getStatus(app, "grpc", "127.0.0.11", token);

    // Assert
    expect(fromFlooder).toMatchObject({ code: Code.ResourceExhausted, reason: "RATE_LIMITED" });
    expect(fromNeighbour.code).toBe(0);
  });
});
