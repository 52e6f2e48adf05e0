import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../internal/conf/load.js";
import { createAuthenticator } from "../../internal/server/auth/authenticator.js";
import type { Caller } from "../../internal/transport/caller.js";

const dir = mkdtempSync(join(tmpdir(), "kbts-authn-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
// Printable, so the secret-file rule (one final newline dropped) never shortens it.
const secret = Buffer.from(randomBytes(32).toString("base64url"));
writeFileSync(join(dir, "hs256"), secret);
const staticToken = `svc-${randomBytes(16).toString("hex")}`;

// A fixed moment, whole seconds; each test moves its own clock from there.
const t0 = 1_800_000_000_000;

// Parsed once per tolerance: reading a config is most of what a setup costs.
const configs = new Map<string, ReturnType<typeof parseConfig>>();
function configWith(clockTolerance: string) {
  let conf = configs.get(clockTolerance);
  if (!conf) {
    conf = parseConfig(
      {
        kms: { root_key: Buffer.alloc(32).toString("base64") },
        auth: {
          enabled: true,
          tokens: [
            {
              name: "svc",
              sha256: createHash("sha256").update(staticToken).digest("hex"),
              scopes: ["users.read"],
            },
          ],
          jwt: {
            audience: "kbts",
            hs256_secret_file: join(dir, "hs256"),
            clock_tolerance: clockTolerance,
          },
        },
      },
      "t",
    );
    configs.set(clockTolerance, conf);
  }
  return conf;
}

function setup(clockTolerance = "0s", verifiedJwts?: number) {
  const clock = { now: t0 };
  const conf = configWith(clockTolerance);
  const authenticate = createAuthenticator(conf.auth, {
    now: () => clock.now,
    ...(verifiedJwts === undefined ? {} : { verifiedJwts }),
  });
  return { clock, authenticate };
}

/** A token with these claims (seconds since the epoch), signed with the configured secret. */
function jwt(claims: { exp: number; nbf?: number; iat?: number; sub?: string }) {
  return new SignJWT({ scope: "users.read", nbf: claims.nbf })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(claims.sub ?? "svc-a")
    .setAudience("kbts")
    .setIssuedAt(claims.iat ?? t0 / 1000 - 10)
    .setExpirationTime(claims.exp)
    .sign(secret);
}

/** What the authenticator answers, and whether it answered at once (from memory or a configured token). */
async function ask(
  authenticate: ReturnType<typeof setup>["authenticate"],
  header: string,
  cheapOnly = false,
) {
  const found = authenticate(header, cheapOnly);
  const atOnce = !(found instanceof Promise);
  const caller: Caller = await found;
  return { atOnce, name: caller.name, problem: caller.problem };
}

describe("the authenticator's memory of tokens", () => {
  it("When a JWT was accepted, Then it is answered at once until its exp, and refused as expired from then, though kept", async () => {
    const { clock, authenticate } = setup();
    const token = await jwt({ exp: t0 / 1000 + 60 });
    expect(await ask(authenticate, `Bearer ${token}`)).toEqual({
      atOnce: false,
      name: "jwt:svc-a",
      problem: undefined,
    });
    clock.now = t0 + 59_999;
    expect(await ask(authenticate, `Bearer ${token}`)).toMatchObject({
      atOnce: true,
      name: "jwt:svc-a",
    });
    clock.now = t0 + 60_000;
    expect(await ask(authenticate, `Bearer ${token}`)).toEqual({
      atOnce: false,
      name: "anonymous",
      problem: "expired",
    });
    clock.now = t0 + 59_999;
    expect(await ask(authenticate, `Bearer ${token}`)).toMatchObject({
      atOnce: false,
      name: "jwt:svc-a",
    });
  });

  it("When a token is not yet valid (nbf), Then it is refused and not kept, and accepted once its time comes", async () => {
    const { clock, authenticate } = setup();
    const token = await jwt({ exp: t0 / 1000 + 600, nbf: t0 / 1000 + 30 });
    expect(await ask(authenticate, `Bearer ${token}`)).toMatchObject({ problem: "invalid" });
    expect(await ask(authenticate, `Bearer ${token}`)).toMatchObject({
      atOnce: false,
      problem: "invalid",
    });
    clock.now = t0 + 30_000;
    expect(await ask(authenticate, `Bearer ${token}`)).toMatchObject({ name: "jwt:svc-a" });
    expect(await ask(authenticate, `Bearer ${token}`)).toMatchObject({ atOnce: true });
  });

  it("When the clock moves around exp, nbf and iat, with a fractional tolerance, Then the kept answer is always a fresh verification's", async () => {
    const exp = t0 / 1000 + 20;
    // Either of nbf and iat may be the later bound.
    const spans = [
      { nbf: t0 / 1000 - 5, iat: t0 / 1000 - 3 },
      { nbf: t0 / 1000 - 3, iat: t0 / 1000 - 5 },
    ];
    for (const { nbf, iat } of spans) {
      const token = await jwt({ exp, nbf, iat });
      for (const tolerance of ["0s", "1.5s"]) {
        const kept = setup(tolerance);
        // Keeping nothing, it verifies every time.
        const fresh = setup(tolerance, 0);
        expect(await ask(kept.authenticate, `Bearer ${token}`)).toMatchObject({
          name: "jwt:svc-a",
        });
        const moments = [exp, nbf, iat].flatMap((s) =>
          [-2500, -1501, -1500, -1499, -1000, -1, 0, 1, 999, 1000, 1499, 1500, 1501, 2500].map(
            (d) => s * 1000 + d,
          ),
        );
        for (const at of moments) {
          kept.clock.now = at;
          fresh.clock.now = at;
          const expected = await ask(fresh.authenticate, `Bearer ${token}`);
          const got = await ask(kept.authenticate, `Bearer ${token}`);
          expect({ name: got.name, problem: got.problem }, `${tolerance} at ${at - t0} ms`).toEqual(
            {
              name: expected.name,
              problem: expected.problem,
            },
          );
          // Put it back in memory for the next moment.
          kept.clock.now = t0;
          await ask(kept.authenticate, `Bearer ${token}`);
        }
      }
    }
  });

  it("When a token fails verification, Then it is refused every time, never kept", async () => {
    const { authenticate } = setup();
    const token = await jwt({ exp: t0 / 1000 + 60 });
    const forged = `${token.slice(0, -4)}AAAA`;
    for (let i = 0; i < 3; i++) {
      expect(await ask(authenticate, `Bearer ${forged}`)).toEqual({
        atOnce: false,
        name: "anonymous",
        problem: "invalid",
      });
    }
  });

  it("When more JWTs arrive than it keeps, Then the oldest is the one verified again", async () => {
    const { authenticate } = setup("0s", 2);
    const tokens = await Promise.all(
      ["a", "b", "c"].map((sub) => jwt({ exp: t0 / 1000 + 60, sub })),
    );
    for (const t of tokens) await ask(authenticate, `Bearer ${t}`);
    expect(await ask(authenticate, `Bearer ${tokens[2]}`)).toMatchObject({
      atOnce: true,
      name: "jwt:c",
    });
    expect(await ask(authenticate, `Bearer ${tokens[1]}`)).toMatchObject({
      atOnce: true,
      name: "jwt:b",
    });
    expect(await ask(authenticate, `Bearer ${tokens[0]}`)).toMatchObject({
      atOnce: false,
      name: "jwt:a",
    });
  });

  it("When a header spells Bearer otherwise, Then it is the same token, kept once", async () => {
    const { authenticate } = setup();
    const token = await jwt({ exp: t0 / 1000 + 60 });
    await ask(authenticate, `bearer  ${token}`);
    expect(await ask(authenticate, `Bearer ${token}`)).toMatchObject({
      atOnce: true,
      name: "jwt:svc-a",
    });
    expect(await ask(authenticate, `BEARER ${token}`)).toMatchObject({
      atOnce: true,
      name: "jwt:svc-a",
    });
    expect(await ask(authenticate, `bearer ${staticToken}`)).toMatchObject({
      atOnce: true,
      name: "svc",
    });
    expect(await ask(authenticate, `Bearer ${staticToken}`)).toMatchObject({
      atOnce: true,
      name: "svc",
    });
  });

  it("When an address is past its limit (cheapOnly), Then a kept JWT is refused unverified as before, a configured token served", async () => {
    const { authenticate } = setup();
    const token = await jwt({ exp: t0 / 1000 + 60 });
    await ask(authenticate, `Bearer ${token}`);
    expect(await ask(authenticate, `Bearer ${token}`, true)).toEqual({
      atOnce: true,
      name: "anonymous",
      problem: "invalid",
    });
    expect(await ask(authenticate, `Bearer ${staticToken}`, true)).toMatchObject({ name: "svc" });
  });

  it("When one header comes in a run, Then each call is answered at once as the lookup would: not for an address past its limit, not once pushed out, not past exp", async () => {
    const { clock, authenticate } = setup("0s", 1);
    const a = `Bearer ${await jwt({ exp: t0 / 1000 + 60 })}`;
    await ask(authenticate, a);
    for (let i = 0; i < 3; i++)
      expect(await ask(authenticate, a)).toMatchObject({ atOnce: true, name: "jwt:svc-a" });
    expect(await ask(authenticate, a, true)).toEqual({
      atOnce: true,
      name: "anonymous",
      problem: "invalid",
    });
    // Keeping b pushes a out (one kept): a is verified again.
    const b = `Bearer ${await jwt({ exp: t0 / 1000 + 60, sub: "svc-b" })}`;
    await ask(authenticate, b);
    expect(await ask(authenticate, a)).toMatchObject({ atOnce: false, name: "jwt:svc-a" });
    expect(await ask(authenticate, a)).toMatchObject({ atOnce: true, name: "jwt:svc-a" });
    clock.now = t0 + 60_000;
    expect(await ask(authenticate, a)).toEqual({
      atOnce: false,
      name: "anonymous",
      problem: "expired",
    });
    // A configured token in a run too.
    for (let i = 0; i < 2; i++)
      expect(await ask(authenticate, `Bearer ${staticToken}`)).toMatchObject({
        atOnce: true,
        name: "svc",
      });
  });

  it("When a header is too large or not a bearer token, Then it is refused as before", async () => {
    const { authenticate } = setup();
    expect(await ask(authenticate, `Bearer ${"x".repeat(9000)}`)).toMatchObject({
      problem: "too_large",
    });
    expect(await ask(authenticate, "Basic abc")).toMatchObject({ problem: "invalid" });
    expect(await ask(authenticate, "")).toMatchObject({ problem: "missing" });
  });
});
