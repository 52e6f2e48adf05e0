import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { KeyStatus, KmsService } from "../../api/kms/v1/kms_pb.js";
import { openKms } from "../../cmd/server/kms.js";
import type { App } from "../../cmd/server/wire.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { startTestApp, testConfig, testRootKey, useTwoInstances } from "../helpers/app.js";
import { grpcClient } from "../helpers/clients.js";
import { outcome, rejection } from "../helpers/errors.js";
import { query } from "../helpers/catalog.js";
import { spawnServer } from "../helpers/process.js";

// Two instances on one database: a and b.
const ctx = useTwoInstances();
const enc = (s: string) => new TextEncoder().encode(s);

const connectKms = (app: App) =>
  createClient(
    KmsService,
    createConnectTransport({ baseUrl: `http://127.0.0.1:${app.httpPort}`, httpVersion: "1.1" }),
  );

describe("KmsService field operations", () => {
  // One value sealed on instance a over Connect, bound to field orders.card and context row:1.
  const card = { fieldName: "orders.card", context: enc("row:1") };
  let sealed: { ciphertext: Uint8Array; keyVersion: number };
  beforeAll(async () => {
    sealed = await connectKms(ctx.a).encryptField({ ...card, plaintext: enc("4111") });
  });

  it("EncryptField names the data key version it sealed with", () => {
    expect(sealed.keyVersion).toBeGreaterThan(0);
  });

  it("a value sealed on one instance over Connect opens on the other over gRPC", async () => {
    const viaGrpc = grpcClient(KmsService, ctx.b.grpcPort);
    try {
      const opened = await viaGrpc.unary(KmsService.method.decryptField, {
        ...card,
        ciphertext: sealed.ciphertext,
      });
      expect(new TextDecoder().decode(opened.plaintext)).toBe("4111");
    } finally {
      viaGrpc.close();
    }
  });

  it("refuses the ciphertext under another context: INVALID_ARGUMENT, CIPHERTEXT_INVALID (gRPC)", async () => {
    const viaGrpc = grpcClient(KmsService, ctx.b.grpcPort);
    try {
      const moved = await rejection(
        viaGrpc.unary(KmsService.method.decryptField, {
          fieldName: "orders.card",
          ciphertext: sealed.ciphertext,
          context: enc("row:2"),
        }),
      );
      expect(moved).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        reason: "CIPHERTEXT_INVALID",
      });
    } finally {
      viaGrpc.close();
    }
  });

  it.each([
    [
      "under another field name",
      () => ({ ...card, fieldName: "orders.note", ciphertext: sealed.ciphertext }),
    ],
    [
      // A header naming a version beyond any key is just an invalid ciphertext.
      "whose header names a version beyond any key",
      () => {
        const farVersion = new Uint8Array(sealed.ciphertext);
        farVersion.set([0xff, 0xff, 0xff, 0xff], 2);
        return { ...card, ciphertext: farVersion };
      },
    ],
    [
      "with one byte altered",
      () => {
        const altered = new Uint8Array(sealed.ciphertext);
        altered[altered.length - 1]! ^= 1;
        return { ...card, ciphertext: altered };
      },
    ],
    ["that is no ciphertext at all", () => ({ ...card, ciphertext: enc("garbage") })],
  ])(
    "refuses a ciphertext %s: INVALID_ARGUMENT, CIPHERTEXT_INVALID (Connect)",
    async (_what, request) => {
      expect(await rejection(connectKms(ctx.a).decryptField(request()))).toMatchObject({
        code: Code.InvalidArgument,
        reason: "CIPHERTEXT_INVALID",
      });
    },
  );

  it("hashes with a keyed, normalised blind index, the same on every instance", async () => {
    const one = await connectKms(ctx.a).hashField({
      fieldName: "email",
      value: " Alice@Example.COM ",
    });
    const two = await connectKms(ctx.b).hashField({
      fieldName: "email",
      value: "alice@example.com",
    });
    expect(one.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(one.hash).toBe(two.hash);
    const { createHash } = await import("node:crypto");
    expect(one.hash).not.toBe(createHash("sha256").update("alice@example.com").digest("hex"));
    expect(
      (await connectKms(ctx.a).hashField({ fieldName: "phone", value: "alice@example.com" })).hash,
    ).not.toBe(one.hash);
  });
});

describe("key lifecycle", () => {
  describe("a value sealed, then three rotations", () => {
    let first: { ciphertext: Uint8Array; keyVersion: number };
    let open: { fieldName: string; ciphertext: Uint8Array; context: Uint8Array };
    beforeAll(async () => {
      const kms = connectKms(ctx.a);
      first = await kms.encryptField({
        fieldName: "f",
        plaintext: enc("kept"),
        context: new Uint8Array(),
      });
      for (let i = 0; i < 3; i++) await kms.rotateDataKey({ reason: `test ${i}` });
      open = { fieldName: "f", ciphertext: first.ciphertext, context: new Uint8Array() };
    });

    it("still decrypts under its own key version", async () => {
      const opened = await connectKms(ctx.a).decryptField(open);
      expect(new TextDecoder().decode(opened.plaintext)).toBe("kept");
      expect(opened.keyVersion).toBe(first.keyVersion);
    });

    it("once its key is revoked, never decrypts: at once where revoked, within 5 s on the instance holding it in cache", async () => {
      const kms = connectKms(ctx.a);
      // Instance b holds the key in its cache before the revocation on a.
      const onB = await connectKms(ctx.b).decryptField(open);
      expect(onB.keyVersion).toBe(first.keyVersion);
      const revoked = await kms.revokeDataKey({ version: first.keyVersion, reason: "test" });
      expect(revoked.key?.status).toBe(KeyStatus.REVOKED);
      expect(await rejection(kms.decryptField(open))).toMatchObject({
        code: Code.FailedPrecondition,
        reason: "KEY_REVOKED",
      });
      // b hears it through LISTEN/NOTIFY, well before its cache lifetime (30s) ends.
      const started = Date.now();
      let onB2 = await outcome(connectKms(ctx.b).decryptField(open));
      while (onB2.reason !== "KEY_REVOKED" && Date.now() - started < 5000) {
        await new Promise((r) => setTimeout(r, 20));
        onB2 = await outcome(connectKms(ctx.b).decryptField(open));
      }
      expect(onB2).toMatchObject({ code: Code.FailedPrecondition, reason: "KEY_REVOKED" });
    });
  });

  it("revoking the active key rotates first", async () => {
    const kms = connectKms(ctx.a);
    const before = (await kms.getStatus({})).activeKey!;
    const r = await kms.revokeDataKey({ version: before.version, reason: "compromised" });
    expect(r.key?.status).toBe(KeyStatus.REVOKED);
    expect(r.activeKey?.version).toBeGreaterThan(before.version);
    expect(r.activeKey?.status).toBe(KeyStatus.ACTIVE);
    const sealed = await kms.encryptField({
      fieldName: "f",
      plaintext: enc("x"),
      context: new Uint8Array(),
    });
    expect(sealed.keyVersion).toBe(r.activeKey?.version);
  });

  it("a rotation on one instance reaches the other at once: it encrypts with the new key", async () => {
    await connectKms(ctx.b).encryptField({
      fieldName: "f",
      plaintext: enc("warm"),
      context: new Uint8Array(),
    });
    const rotated = await connectKms(ctx.a).rotateDataKey({ reason: "spread" });
    const started = Date.now();
    let version = 0;
    while (Date.now() - started < 5000) {
      version = (
        await connectKms(ctx.b).encryptField({
          fieldName: "f",
          plaintext: enc("x"),
          context: new Uint8Array(),
        })
      ).keyVersion;
      if (version === rotated.key!.version) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(version).toBe(rotated.key!.version);
  });

  it("10 concurrent RotateDataKey calls leave exactly one active key and unique versions", async () => {
    const kms = connectKms(ctx.a);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => kms.rotateDataKey({ reason: `burst ${i}` })),
    );
    const versions = results.map((r) => r.key!.version);
    expect(new Set(versions).size).toBe(10);
    const active = await query<{ n: string }>(
      ctx.db.url,
      "SELECT count(*) AS n FROM kms_data_keys WHERE status = 'active'",
    );
    expect(active).toEqual([{ n: "1" }]);
    const dupes = await query(
      ctx.db.url,
      "SELECT version FROM kms_data_keys GROUP BY version HAVING count(*) > 1",
    );
    expect(dupes).toEqual([]);
  });

  it("when 10 instances' timers fire together on a due key, exactly one rotation happens", async () => {
    await query(
      ctx.db.url,
      "UPDATE kms_data_keys SET expires_at = now() - interval '1 second' WHERE status = 'active'",
    );
    const before = await query<{ n: string }>(
      ctx.db.url,
      "SELECT count(*) AS n FROM kms_data_keys",
    );
    const log = createLogger({ level: "silent", format: "json" });
    const pools = Array.from(
      { length: 10 },
      () => new pg.Pool({ connectionString: ctx.db.url, max: 2 }),
    );
    try {
      const conf = testConfig(ctx.db.url).kms!;
      // Opened, not started: their timers are the calls below.
      const instances = [];
      for (const pool of pools)
        instances.push(
          await openKms(conf, { data: { pool, direct: { url: ctx.db.url, pool } }, log }),
        );
      try {
        const rotations = await Promise.all(instances.map((k) => k.keys.rotateIfDue()));
        expect(rotations.filter((r) => r !== undefined)).toHaveLength(1);
      } finally {
        await Promise.all(instances.map((k) => k.close()));
      }
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
    const after = await query<{ n: string }>(ctx.db.url, "SELECT count(*) AS n FROM kms_data_keys");
    expect(Number(after[0]!.n)).toBe(Number(before[0]!.n) + 1);
  });

  it("maintenance marks keys past expires_at expired, still decrypting, and deletes nothing", async () => {
    const kms = connectKms(ctx.a);
    const sealed = await kms.encryptField({
      fieldName: "f",
      plaintext: enc("old"),
      context: new Uint8Array(),
    });
    await kms.rotateDataKey({ reason: "age" });
    await query(
      ctx.db.url,
      "UPDATE kms_data_keys SET expires_at = now() - interval '1 second' WHERE version = $1",
      [sealed.keyVersion],
    );
    const count = await query(ctx.db.url, "SELECT count(*) AS n FROM kms_data_keys");
    const report = await kms.runMaintenance({});
    expect(report.expiredVersions).toContain(sealed.keyVersion);
    expect(report.deletedKeys).toBe(0);
    expect((await kms.getDataKey({ version: sealed.keyVersion })).key?.status).toBe(
      KeyStatus.EXPIRED,
    );
    expect(await query(ctx.db.url, "SELECT count(*) AS n FROM kms_data_keys")).toEqual(count);
    const opened = await connectKms(ctx.b).decryptField({
      fieldName: "f",
      ciphertext: sealed.ciphertext,
      context: new Uint8Array(),
    });
    expect(new TextDecoder().decode(opened.plaintext)).toBe("old");
  });
});

describe("KmsService reads", () => {
  /** Every version ListDataKeys pages through, 4 a page, in the order given. */
  const listedVersions = async () => {
    const seen: number[] = [];
    let token = "";
    do {
      const page = await connectKms(ctx.a).listDataKeys({ pageSize: 4, pageToken: token });
      expect(page.keys.length).toBeLessThanOrEqual(4);
      seen.push(...page.keys.map((k) => k.version));
      token = page.nextPageToken;
    } while (token);
    return seen;
  };

  it("GetStatus reports an initialised AES-256-GCM KMS, its active key and the key counts", async () => {
    const status = await connectKms(ctx.a).getStatus({});
    expect(status.initialized).toBe(true);
    expect(status.algorithm).toBe("AES-256-GCM");
    expect(status.activeKey?.status).toBe(KeyStatus.ACTIVE);
    expect(status.keyStats.reduce((n, s) => n + s.keyCount, 0)).toBeGreaterThan(10);
  });

  it("ListDataKeys pages through every key, newest first, each once", async () => {
    const seen = await listedVersions();
    expect(seen).toEqual([...seen].sort((x, y) => y - x));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("ListDataKeys filtered by status lists keys of that status only", async () => {
    const revoked = await connectKms(ctx.a).listDataKeys({ status: KeyStatus.REVOKED });
    expect(revoked.keys.every((k) => k.status === KeyStatus.REVOKED)).toBe(true);
  });

  it("GetDataKey reports metadata, never key material", async () => {
    const oldest = (await listedVersions()).at(-1)!;
    const body = JSON.stringify(await connectKms(ctx.a).getDataKey({ version: oldest }), (_k, v) =>
      typeof v === "bigint" ? String(v) : v,
    );
    expect(body).not.toMatch(/encrypted|wrapped/i);
  });

  it.each([
    ["beyond the int4 range", 4_000_000_000, { code: Code.NotFound }],
    ["that does not exist", 99999, { code: Code.NotFound, reason: "KEY_NOT_FOUND" }],
  ])("GetDataKey answers NOT_FOUND for a version %s", async (_what, version, expected) => {
    expect(await rejection(connectKms(ctx.a).getDataKey({ version }))).toMatchObject(expected);
  });

  it("ListDataKeys refuses a page token it did not issue with INVALID_PAGE_TOKEN", async () => {
    expect(await rejection(connectKms(ctx.a).listDataKeys({ pageToken: "bogus" }))).toMatchObject({
      code: Code.InvalidArgument,
      reason: "INVALID_PAGE_TOKEN",
    });
  });
});

describe("root key", () => {
  const configFor = (key: string) => ({
    DATABASE_URL: ctx.db.url,
    KMS_ROOT_KEY: key,
  });

  it("a restart with the same root key decrypts what was sealed before", async () => {
    const sealed = await connectKms(ctx.a).encryptField({
      fieldName: "f",
      plaintext: enc("durable"),
      context: new Uint8Array(),
    });
    const again = await startTestApp(ctx.db.url);
    try {
      const opened = await connectKms(again).decryptField({
        fieldName: "f",
        ciphertext: sealed.ciphertext,
        context: new Uint8Array(),
      });
      expect(new TextDecoder().decode(opened.plaintext)).toBe("durable");
    } finally {
      await again.stop();
    }
  });

  it("another root key refuses to start, naming the problem, never the key", async () => {
    const wrong = spawnServer(["-conf", "configs/config.yaml"], {
      env: configFor(Buffer.alloc(32, 0x77).toString("base64")),
    });
    expect(await wrong.exited).toBe(1);
    expect(wrong.output()).toMatch(/wrong root key/);
    expect(wrong.output()).not.toContain(Buffer.alloc(32, 0x77).toString("base64"));
  });
});

describe("at rest", () => {
  it("a scan of every table holds no plaintext that was encrypted, and no key material", async () => {
    const secret = "needle-7c1e4b-plaintext";
    const sealed = await connectKms(ctx.a).encryptField({
      fieldName: "f",
      plaintext: enc(secret),
      context: new Uint8Array(),
    });
    // Store it, as a service using this KMS would.
    await query(ctx.db.url, "CREATE TABLE IF NOT EXISTS vault (v bytea)");
    await query(ctx.db.url, "INSERT INTO vault VALUES ($1)", [Buffer.from(sealed.ciphertext)]);
    // Every row of every table, as text (bytea as hex): what a dump would hold.
    const tables = await query<{ t: string }>(
      ctx.db.url,
      `SELECT format('%I.%I', n.nspname, c.relname) AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`,
    );
    let dump = "";
    for (const { t } of tables) {
      const rows = await query<{ r: string }>(ctx.db.url, `SELECT t::text AS r FROM ${t} AS t`);
      dump += `${t}\n${rows.map((r) => r.r).join("\n")}\n`;
    }
    expect(dump).toContain("public.vault");
    expect(dump).toContain("public.kms_data_keys");
    expect(dump.toLowerCase()).not.toContain(secret);
    expect(dump.toLowerCase()).not.toContain(Buffer.from(secret).toString("hex"));
    expect(dump).not.toContain(Buffer.from(testRootKey, "base64").toString("hex"));
    expect(dump).not.toContain(testRootKey);
  });
});
