import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { assertAlgorithm, seal } from "../../internal/pkg/kms/aead.js";
import { blindIndex, fieldSubkey, normalise } from "../../internal/pkg/kms/blindindex.js";
import { zeroKey } from "../../internal/pkg/kms/key_object.js";
import {
  CiphertextError,
  decrypt,
  encrypt,
  fieldContext,
  FORMAT_LEGACY,
  readHeader,
} from "../../internal/pkg/kms/codec.js";
import { sealLegacy } from "../helpers/legacy.js";
import { deriveRootKey, loadRootKey } from "../../internal/pkg/kms/rootkey.js";
import { unwrapKey, wrapKey } from "../../internal/pkg/kms/wrap.js";

const key = Buffer.alloc(32, 0x42);
const none = { rootKey: "", rootKeyFile: "", seed: "", salt: "", iterations: 0 };

describe("known answers", () => {
  // RFC 7914, section 11 (PBKDF2-HMAC-SHA256 test vectors).
  it("PBKDF2-SHA256 (RFC 7914)", () => {
    expect(deriveRootKey("passwd", "salt", 1, 64).toString("hex")).toBe(
      "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
    );
    expect(deriveRootKey("Password", "NaCl", 80000, 64).toString("hex")).toBe(
      "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
    );
  });

  // RFC 4231, test case 2: the blind index is plain HMAC-SHA256 over the normalised value.
  it("HMAC-SHA256 (RFC 4231)", () => {
    expect(blindIndex(Buffer.from("Jefe"), "note", "what do ya want for nothing?")).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
  });
});

describe("root key", () => {
  it("comes from base64, a file (raw or base64), or seed + salt", () => {
    expect(loadRootKey({ ...none, rootKey: key.toString("base64") })).toEqual(key);
    const dir = mkdtempSync(join(tmpdir(), "rk-"));
    writeFileSync(join(dir, "raw"), key);
    writeFileSync(join(dir, "b64"), `${key.toString("base64")}\n`);
    expect(loadRootKey({ ...none, rootKeyFile: join(dir, "raw") })).toEqual(key);
    expect(loadRootKey({ ...none, rootKeyFile: join(dir, "b64") })).toEqual(key);
    expect(loadRootKey({ ...none, seed: "s", salt: "x", iterations: 100000 })).toEqual(
      deriveRootKey("s", "x", 100000),
    );
  });

  it("refuses short keys, weak derivations and missing files without echoing them", () => {
    expect(() => loadRootKey({ ...none, rootKey: "c2hvcnQ=" })).toThrow(
      /kms.root_key: must be 32 bytes/,
    );
    expect(() => loadRootKey({ ...none, rootKey: "c2hvcnQ=" })).not.toThrow(/c2hvcnQ/);
    expect(() => loadRootKey({ ...none, seed: "s", salt: "x", iterations: 1000 })).toThrow(
      /at least 100000/,
    );
    expect(() => loadRootKey({ ...none, rootKeyFile: "/nonexistent/key" })).toThrow(/ENOENT/);
  });
});

describe("ciphertext codec", () => {
  const ctx = fieldContext("users.email", Buffer.from("row:7"));
  const ct = encrypt(
    { algorithm: "AES-256-GCM", version: 3 },
    key,
    Buffer.from("alice@example.com"),
    ctx,
    "store",
  );

  it("is self-describing: format byte (the key domain), algorithm, key version", () => {
    expect(ct[0]).toBe(2);
    expect(readHeader(ct)).toEqual({ format: 2, algorithm: "AES-256-GCM", version: 3 });
    expect(decrypt(ct, key, ctx, "store").toString()).toBe("alice@example.com");
  });

  it("keeps its domains apart: a store's value never opens as a caller's, nor the reverse, even relabelled", () => {
    const theirs = encrypt(
      { algorithm: "AES-256-GCM", version: 3 },
      key,
      Buffer.from("x"),
      ctx,
      "service",
    );
    expect(theirs[0]).toBe(3);
    expect(decrypt(theirs, key, ctx, "service").toString()).toBe("x");
    expect(() => decrypt(theirs, key, ctx, "store")).toThrow(CiphertextError);
    expect(() => decrypt(ct, key, ctx, "service")).toThrow(CiphertextError);
    // The format byte is authenticated: relabelling breaks the tag.
    for (const [value, domain] of [
      [Buffer.from(ct), "service"],
      [Buffer.from(theirs), "store"],
    ] as const) {
      value[0] = domain === "service" ? 3 : 2;
      expect(() => decrypt(value, key, ctx, domain)).toThrow(CiphertextError);
      value[0] = FORMAT_LEGACY;
      expect(() => decrypt(value, key, ctx, domain)).toThrow(CiphertextError);
    }
  });

  it("opens a value sealed before domains (format 1) in either domain: the cipher above decides", () => {
    const old = sealLegacy(key, 3, "old", ctx);
    expect(readHeader(old).format).toBe(FORMAT_LEGACY);
    expect(decrypt(old, key, ctx, "store").toString()).toBe("old");
    expect(decrypt(old, key, ctx, "service").toString()).toBe("old");
  });

  it("fails on every single-byte change", () => {
    for (let i = 0; i < ct.length; i++) {
      const altered = Buffer.from(ct);
      altered[i] = altered[i]! ^ 0x01;
      expect(() => decrypt(altered, key, ctx, "store"), `byte ${i}`).toThrow(CiphertextError);
    }
  });

  it("fails on every truncation", () => {
    for (let n = 0; n < ct.length; n++) {
      expect(() => decrypt(ct.subarray(0, n), key, ctx, "store"), `length ${n}`).toThrow(
        CiphertextError,
      );
    }
  });

  it("fails when moved to another field or row", () => {
    expect(() =>
      decrypt(ct, key, fieldContext("users.phone", Buffer.from("row:7")), "store"),
    ).toThrow(CiphertextError);
    expect(() =>
      decrypt(ct, key, fieldContext("users.email", Buffer.from("row:8")), "store"),
    ).toThrow(CiphertextError);
  });

  it("fails under another key, and never says more than it is invalid", () => {
    let message = "";
    try {
      decrypt(ct, Buffer.alloc(32, 1), ctx, "store");
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toBe(
      "ciphertext is malformed, altered, or belongs to another field or context",
    );
  });

  it("supports ChaCha20-Poly1305 and refuses the rest of the table's list", () => {
    const c = encrypt(
      { algorithm: "ChaCha20-Poly1305", version: 1 },
      key,
      Buffer.from("x"),
      ctx,
      "store",
    );
    expect(readHeader(c).algorithm).toBe("ChaCha20-Poly1305");
    expect(decrypt(c, key, ctx, "store").toString()).toBe("x");
    expect(() => assertAlgorithm("AES-256-CBC")).toThrow(/not supported: unauthenticated/);
    expect(() => assertAlgorithm("SM4-GCM")).toThrow(/not supported/);
  });
});

describe("wrapped keys", () => {
  it("unwrap only under the same root key and label", () => {
    const wrapped = wrapKey(key, Buffer.alloc(32, 9), "data-key:v1:AES-256-GCM");
    expect(unwrapKey(key, wrapped, "data-key:v1:AES-256-GCM")).toEqual(Buffer.alloc(32, 9));
    expect(() => unwrapKey(Buffer.alloc(32, 1), wrapped, "data-key:v1:AES-256-GCM")).toThrow();
    expect(() => unwrapKey(key, wrapped, "data-key:v2:AES-256-GCM")).toThrow();
  });
});

describe("blind indexes", () => {
  it.each([
    ["email", " Alice@Example.COM ", "alice@example.com"],
    ["phone", "+86 138-0013-8000", "+8613800138000"],
    ["name", "  Ann   Lee ", "Ann Lee"],
    ["users.email", "Bob@X.org", "bob@x.org"],
  ])("normalise(%s, %j) = %j", (field, value, expected) =>
    expect(normalise(field, value)).toBe(expected),
  );

  it("are keyed and per field: equal values in different fields or under other keys differ", () => {
    const a = blindIndex(fieldSubkey(key, "email", "store"), "email", "a@b.c");
    expect(blindIndex(fieldSubkey(key, "email", "store"), "email", " A@B.C")).toBe(a);
    expect(blindIndex(fieldSubkey(key, "name", "store"), "name", "a@b.c")).not.toBe(a);
    expect(
      blindIndex(fieldSubkey(Buffer.alloc(32, 1), "email", "store"), "email", "a@b.c"),
    ).not.toBe(a);
    // A caller's field name never derives a store's subkey.
    expect(blindIndex(fieldSubkey(key, "email", "service"), "email", "a@b.c")).not.toBe(a);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("nonces", () => {
  it("are never handed out twice, across many refills of their pool", () => {
    const key = Buffer.alloc(32, 9);
    const seen = new Set<string>();
    const n = 20_000; // about 60 pools
    for (let i = 0; i < n; i++) {
      const out = Buffer.alloc(12 + 1 + 16);
      seal("AES-256-GCM", key, Buffer.from("x"), Buffer.alloc(0), out, 0);
      const nonce = out.subarray(0, 12);
      seen.add(nonce.toString("hex"));
    }
    expect(seen.size).toBe(n);
  });
});

describe("key objects", () => {
  it("zeroKey zeroes a key and drops its KeyObject: nothing is computed under the old key afterwards", () => {
    const key = Buffer.alloc(32, 9);
    const before = blindIndex(key, "note", "x");
    zeroKey(key);
    expect(key.equals(Buffer.alloc(32))).toBe(true);
    expect(blindIndex(key, "note", "x")).toBe(blindIndex(Buffer.alloc(32), "note", "x"));
    expect(blindIndex(key, "note", "x")).not.toBe(before);
  });
});
