import { Code, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import { useTestApp } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { rejection } from "../helpers/errors.js";
import { sealWithStoredKey } from "../helpers/seal.js";

// What a kms.crypto caller could try on a user's stored values: every name
// and context a store might use, on both ports.
const ctx = useTestApp();
const enc = (s: string) => new TextEncoder().encode(s);
let ports: [string, Client<typeof KmsService>][];
let users: Client<typeof UserService>;

interface Stored {
  id: number;
  email: string;
  email_encrypted: Buffer;
  email_hash: string;
  email_key_version: number;
}

let alice: Stored;

beforeAll(async () => {
  ports = [
    [
      "gRPC",
      createClient(
        KmsService,
        createGrpcTransport({ baseUrl: `http://127.0.0.1:${ctx.app.grpcPort}` }),
      ),
    ],
    [
      "Connect",
      createClient(
        KmsService,
        createConnectTransport({
          baseUrl: `http://127.0.0.1:${ctx.app.httpPort}`,
          httpVersion: "1.1",
        }),
      ),
    ],
  ];
  users = createClient(
    UserService,
    createGrpcTransport({ baseUrl: `http://127.0.0.1:${ctx.app.grpcPort}` }),
  );
  const email = "alice.domains@example.com";
  const { user } = await users.createUser({
    username: "alice_domains",
    password: "s3cret-pass",
    email,
    name: "Alice Domains",
  });
  const [row] = await query<Omit<Stored, "email">>(
    ctx.db.url,
    "SELECT id, email_encrypted, email_hash, email_key_version FROM users WHERE id = $1",
    [Number(user!.id)],
  );
  alice = { ...row!, email };
});

/** Every field name and context a caller might send to reach alice's email. */
const guesses = () =>
  ["users.email", "email", "users.email_encrypted", "users", "user.email"].flatMap((fieldName) =>
    [`users:${alice.id}`, "", String(alice.id)].map((context) => ({
      fieldName,
      context: enc(context),
    })),
  );

const sealLegacy = (plaintext: string, fieldName: string, context: string) =>
  sealWithStoredKey(ctx.db.url, "legacy", plaintext, fieldName, context);

describe("KmsService works in a key domain of its own", () => {
  it("DecryptField opens no stored user value, whatever name and context: CIPHERTEXT_INVALID", async () => {
    for (const [port, kms] of ports) {
      for (const guess of guesses()) {
        const f = await rejection(
          kms.decryptField({ ...guess, ciphertext: alice.email_encrypted }),
        );
        expect(f, `${port} ${guess.fieldName}`).toMatchObject({
          code: Code.InvalidArgument,
          reason: "CIPHERTEXT_INVALID",
        });
        expect(f.message).not.toContain(alice.email);
      }
    }
  });

  it("EncryptField forges no value a user row accepts: the row reads as corrupt, not as the forgery", async () => {
    const [, kms] = ports[0]!;
    const forged = await kms.encryptField({
      fieldName: "users.email",
      plaintext: enc("mallory@example.com"),
      context: enc(`users:${alice.id}`),
    });
    await query(ctx.db.url, "UPDATE users SET email_encrypted = $1 WHERE id = $2", [
      Buffer.from(forged.ciphertext),
      alice.id,
    ]);
    try {
      expect(await rejection(users.getUser({ id: BigInt(alice.id) }))).toMatchObject({
        code: Code.DataLoss,
        reason: "USER_DATA_CORRUPT",
        metadata: { field: "email" },
      });
    } finally {
      await query(ctx.db.url, "UPDATE users SET email_encrypted = $1 WHERE id = $2", [
        alice.email_encrypted,
        alice.id,
      ]);
    }
    expect((await users.getUser({ id: BigInt(alice.id) })).user?.email).toBe(alice.email);
  });

  it("HashField reproduces no stored blind index, under any field name", async () => {
    for (const [, kms] of ports) {
      for (const fieldName of ["email", "users.email", "login", "name", "phone"]) {
        const { hash } = await kms.hashField({ fieldName, value: alice.email });
        expect(hash).toMatch(/^[0-9a-f]{64}$/);
        expect(hash, fieldName).not.toBe(alice.email_hash);
      }
    }
    // Still keyed, normalised and stable for the caller's own use.
    const [, kms] = ports[1]!;
    const a = await kms.hashField({ fieldName: "email", value: " Alice.Domains@Example.com" });
    expect(a.hash).toBe((await kms.hashField({ fieldName: "email", value: alice.email })).hash);
  });

  it("a caller's own ciphertexts round-trip, and those sealed before domains keep opening", async () => {
    const [, kms] = ports[0]!;
    const mine = await kms.encryptField({
      fieldName: "cards.number",
      plaintext: enc("4111"),
      context: enc("order:9"),
    });
    expect(mine.ciphertext[0]).toBe(3);
    const opened = await kms.decryptField({
      fieldName: "cards.number",
      ciphertext: mine.ciphertext,
      context: enc("order:9"),
    });
    expect(new TextDecoder().decode(opened.plaintext)).toBe("4111");

    const old = await sealLegacy("held since last release", "cards.number", "order:1");
    for (const [, client] of ports) {
      const r = await client.decryptField({
        fieldName: "cards.number",
        ciphertext: old.ciphertext,
        context: enc("order:1"),
      });
      expect(new TextDecoder().decode(r.plaintext)).toBe("held since last release");
      expect(r.keyVersion).toBe(old.version);
    }
  });

  it("a user value sealed before domains still reads through UserService, and never through DecryptField", async () => {
    const legacy = await sealLegacy(alice.email, "users.email", `users:${alice.id}`);
    await query(ctx.db.url, "UPDATE users SET email_encrypted = $1 WHERE id = $2", [
      legacy.ciphertext,
      alice.id,
    ]);
    try {
      expect((await users.getUser({ id: BigInt(alice.id) })).user?.email).toBe(alice.email);
      for (const [port, kms] of ports) {
        for (const guess of guesses()) {
          const f = await rejection(kms.decryptField({ ...guess, ciphertext: legacy.ciphertext }));
          expect(f, `${port} ${guess.fieldName}`).toMatchObject({
            code: Code.InvalidArgument,
            reason: "CIPHERTEXT_INVALID",
          });
        }
      }
    } finally {
      await query(ctx.db.url, "UPDATE users SET email_encrypted = $1 WHERE id = $2", [
        alice.email_encrypted,
        alice.id,
      ]);
    }
  });

  it("refuses a store's value before looking up its key: under a revoked key, still CIPHERTEXT_INVALID", async () => {
    const [, kms] = ports[0]!;
    await kms.revokeDataKey({ version: alice.email_key_version, reason: "test" });
    for (const [port, client] of ports) {
      expect(
        await rejection(
          client.decryptField({
            fieldName: "users.email",
            ciphertext: alice.email_encrypted,
            context: enc(`users:${alice.id}`),
          }),
        ),
        port,
      ).toMatchObject({ code: Code.InvalidArgument, reason: "CIPHERTEXT_INVALID" });
    }
    expect(await rejection(users.getUser({ id: BigInt(alice.id) }))).toMatchObject({
      reason: "KEY_REVOKED",
    });
  });
});
