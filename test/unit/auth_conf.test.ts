import { durationMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../internal/conf/load.js";

const minimal = { kms: { root_key: Buffer.alloc(32, 1).toString("base64") } };
const jwt = { audience: "a", hs256_secret_file: "/dev/null" };

describe("token and per-address settings", () => {
  it("When a file leaves them out, Then tokens are bounded to 8 KiB and each address to 20 failed authentications, then 60 a minute", () => {
    const conf = parseConfig(minimal, "t.yaml");
    expect(conf.auth?.maxTokenBytes).toBe(8192);
    expect(conf.limits?.authFailureBurst).toBe(20);
    expect(conf.limits?.authFailuresPerMinute).toBe(60);
  });

  it("When a JWT section names a maximum lifetime, Then it is read as a duration", () => {
    const conf = parseConfig({ ...minimal, auth: { jwt: { ...jwt, max_lifetime: "1h" } } }, "t");
    expect(durationMs(conf.auth!.jwt!.maxLifetime!)).toBe(3_600_000);
  });

  it.each([
    [
      { auth: { max_token_bytes: 10 } },
      /^config t: auth\.max_token_bytes: must be greater than or equal to 64/,
    ],
    [{ auth: { jwt: { ...jwt, max_lifetime: "-1s" } } }, /^config t: auth\.jwt\.max_lifetime: /],
    [{ limits: { auth_failures_per_minute: -1 } }, /^config t: limits\.auth_failures_per_minute: /],
  ])("When the file holds %j, Then start-up stops naming the field", (tree, message) => {
    expect(() => parseConfig({ ...minimal, ...tree }, "t")).toThrow(ConfigError);
    expect(() => parseConfig({ ...minimal, ...tree }, "t")).toThrow(message);
  });
});
