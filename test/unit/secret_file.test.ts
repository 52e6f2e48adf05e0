import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import { Auth_JwtSchema } from "../../internal/conf/conf_pb.js";
import { jwtVerifier } from "../../internal/server/auth/jwt.js";
import { loadRootKey } from "../../internal/pkg/kms/rootkey.js";
import { readSecretFile } from "../../internal/pkg/secret/file.js";

const dir = mkdtempSync(join(tmpdir(), "kbts-secret-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

describe("the secret-file rule", () => {
  it("drops one final line ending and nothing else", () => {
    const read = (content: string) => readSecretFile("x", file("f", content)).toString("latin1");
    expect(read("s3cret")).toBe("s3cret");
    expect(read("s3cret\n")).toBe("s3cret");
    expect(read("s3cret\r\n")).toBe("s3cret");
    expect(read("s3cret\n\n")).toBe("s3cret\n");
    expect(read(" s3cret \n")).toBe(" s3cret ");
    expect(read("s3cret\r")).toBe("s3cret\r");
  });

  it("refuses an empty secret and a missing file, naming the setting and never the content", () => {
    expect(() => readSecretFile("auth.jwt.hs256_secret_file", file("e", "\n"))).toThrow(
      /auth\.jwt\.hs256_secret_file: .* is empty/,
    );
    expect(() => readSecretFile("--token-file", join(dir, "missing"))).toThrow(
      /--token-file: cannot read .*: ENOENT/,
    );
  });

  it("a root key file: exactly 32 bytes are the key, even ending in a newline byte; else its base64 by the rule", () => {
    const none = { rootKey: "", rootKeyFile: "", seed: "", salt: "", iterations: 0 };
    const key = Buffer.alloc(32, 7);
    key[31] = 0x0a;
    const load = (content: string | Buffer) =>
      loadRootKey({ ...none, rootKeyFile: file("k", content) });
    expect(load(key)).toEqual(key);
    expect(load(Buffer.concat([key, Buffer.from("\n")]))).toEqual(key);
    expect(load(`${key.toString("base64")}\n`)).toEqual(key);
    expect(load(`${key.toString("base64")}\r\n`)).toEqual(key);
    expect(() => load(`${key.toString("base64")}\n\n`)).toThrow(/must be 32 bytes, base64/);
    expect(() => load(` ${key.toString("base64")}`)).toThrow(/must be 32 bytes, base64/);
    expect(() => load("")).toThrow(/must be 32 bytes/);
  });
});

describe("auth.jwt.hs256_secret_file", () => {
  it("follows the rule: a secret written with echo verifies tokens signed with the secret alone", async () => {
    const secret = "an-hs256-secret-of-at-least-32-bytes!";
    const verify = jwtVerifier(
      create(Auth_JwtSchema, { audience: "kbts", hs256SecretFile: file("hs", `${secret}\n`) }),
    );
    const token = await new SignJWT({ scope: "users.read" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("svc")
      .setAudience("kbts")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(secret));
    expect((await verify(token)).caller.name).toBe("jwt:svc");
  });
});
