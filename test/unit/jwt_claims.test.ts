import { describe, expect, it } from "vitest";
import { claimsProblem } from "../../internal/server/auth/jwt.js";

// The claims of a validly signed token, checked at `now` with 30 s of
// clock tolerance and a 24 h maximum lifetime unless a test says otherwise.
const now = 1_800_000_000;
const day = 24 * 3600;
const check = (claims: Record<string, unknown>, maxLifetime = day) =>
  claimsProblem({ sub: "svc", iat: now, exp: now + 60, ...claims }, now, 30, maxLifetime);

describe("claims of a signed JWT", () => {
  it("When every claim is within bounds, Then the token is accepted", () => {
    expect(check({})).toBeUndefined();
  });

  it.each([
    ["an object", { a: 1 }],
    ["empty", ""],
    ["257 bytes", "é".repeat(128) + "x"],
    ["a line break", "a\nb"],
  ])("When sub is %s, Then it is refused as bad_subject", (_what, sub) => {
    expect(check({ sub })).toBe("bad_subject");
  });

  it("When iat is ahead by the tolerance exactly, Then it is accepted; a second more is not", () => {
    expect(check({ iat: now + 30, exp: now + 90 })).toBeUndefined();
    expect(check({ iat: now + 31, exp: now + 91 })).toBe("issued_in_future");
  });

  it("When exp - iat is the maximum, Then it is accepted; a second more is not", () => {
    expect(check({ exp: now + day })).toBeUndefined();
    expect(check({ exp: now + day + 1 })).toBe("lifetime_too_long");
  });

  it("When iat is missing, Then it is refused while a maximum lifetime applies", () => {
    expect(check({ iat: undefined })).toBe("no_issued_at");
  });

  it("When the maximum lifetime is 0, Then iat is optional and any lifetime goes", () => {
    expect(check({ iat: undefined, exp: 1e12 }, 0)).toBeUndefined();
    expect(check({ exp: 1e12 }, 0)).toBeUndefined();
    expect(check({ iat: now + 3600, exp: 1e12 }, 0)).toBe("issued_in_future");
  });
});
