import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { KeyStatus, KmsService } from "../../api/kms/v1/kms_pb.js";
import { keyPolicy, type App } from "../../cmd/server/wire.js";
import { KeyLifecycle } from "../../internal/biz/key_lifecycle.js";
import { newKeyring } from "../../internal/biz/keyring.js";
import { loadRootKey } from "../../internal/pkg/kms/rootkey.js";
import { newDataKeyRepo } from "../../internal/data/kms_repo.js";
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
  it("encrypts and decrypts on both ports, bound to field name and context", async () => {
    const kms = connectKms(ctx.a);
    const sealed = await kms.encryptField({
      fieldName: "orders.card",
      plaintext: enc("4111"),
      context: enc("row:1"),
    });
    expect(sealed.keyVersion).toBeGreaterThan(0);
    const viaGrpc = grpcClient(KmsService, ctx.b.grpcPort);
    try {
      const opened = await viaGrpc.unary(KmsService.method.decryptField, {
        fieldName: "orders.card",
        ciphertext: sealed.ciphertext,
        context: enc("row:1"),
      });
      expect(new TextDecoder().decode(opened.plaintext)).toBe("4111");
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
    const other = await rejection(
      kms.decryptField({
        fieldName: "orders.note",
        ciphertext: sealed.ciphertext,
        context: enc("row:1"),
      }),
    );
    expect(other).toMatchObject({ code: Code.InvalidArgument, reason: "CIPHERTEXT_INVALID" });
    // A header naming a version beyond any key is just an invalid ciphertext.
    const farVersion = new Uint8Array(sealed.ciphertext);
    farVersion.set([0xff, 0xff, 0xff, 0xff], 2);
    expect(
      await rejection(
        kms.decryptField({
          fieldName: "orders.card",
          ciphertext: farVersion,
          context: enc("row:1"),
        }),
      ),
    ).toMatchObject({ code: Code.InvalidArgument, reason: "CIPHERTEXT_INVALID" });
    const altered = new Uint8Array(sealed.ciphertext);
    altered[altered.length - 1]! ^= 1;
    expect(
      await rejection(
        kms.decryptField({ fieldName: "orders.card", ciphertext: altered, context: enc("row:1") }),
      ),
    ).toMatchObject({
      code: Code.InvalidArgument,
      reason: "CIPHERTEXT_INVALID",
    });
    expect(
      await rejection(
        kms.decryptField({
          fieldName: "orders.card",
          ciphertext: enc("garbage"),
          context: enc("row:1"),
        }),
      ),
    ).toMatchObject({
      code: Code.InvalidArgument,
      reason: "CIPHERTEXT_INVALID",
    });
  });

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
  it("three rotations later the first ciphertext still decrypts; a revoked version never does", async () => {
    const kms = connectKms(ctx.a);
    const first = await kms.encryptField({
      fieldName: "f",
      plaintext: enc("kept"),
      context: new Uint8Array(),
    });
    for (let i = 0; i < 3; i++) await kms.rotateDataKey({ reason: `test ${i}` });
    const open = { fieldName: "f", ciphertext: first.ciphertext, context: new Uint8Array() };
    const opened = await kms.decryptField(open);
    expect(new TextDecoder().decode(opened.plaintext)).toBe("kept");
    expect(opened.keyVersion).toBe(first.keyVersion);
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
      const instances = pools.map((pool) => {
        const repo = newDataKeyRepo(pool, ctx.db.url, log);
        const rootKey = loadRootKey(conf);
        const keyring = newKeyring(repo, rootKey, 30_000);
        return new KeyLifecycle({
          repo,
          keyring,
          rootKey,
          policy: keyPolicy(conf),
          stores: [],
          log,
        });
      });
      const rotations = await Promise.all(instances.map((k) => k.rotateIfDue()));
      expect(rotations.filter((r) => r !== undefined)).toHaveLength(1);
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
  it("GetStatus, ListDataKeys paging and GetDataKey report metadata, never key material", async () => {
    const kms = connectKms(ctx.a);
    const status = await kms.getStatus({});
    expect(status.initialized).toBe(true);
    expect(status.algorithm).toBe("AES-256-GCM");
    expect(status.activeKey?.status).toBe(KeyStatus.ACTIVE);
    expect(status.keyStats.reduce((n, s) => n + s.keyCount, 0)).toBeGreaterThan(10);
    const seen: number[] = [];
    let token = "";
    do {
      const page = await kms.listDataKeys({ pageSize: 4, pageToken: token });
      expect(page.keys.length).toBeLessThanOrEqual(4);
      seen.push(...page.keys.map((k) => k.version));
      token = page.nextPageToken;
    } while (token);
    expect(seen).toEqual([...seen].sort((x, y) => y - x));
    expect(new Set(seen).size).toBe(seen.length);
    const revoked = await kms.listDataKeys({ status: KeyStatus.REVOKED });
    expect(revoked.keys.every((k) => k.status === KeyStatus.REVOKED)).toBe(true);
    const body = JSON.stringify(await kms.getDataKey({ version: seen.at(-1)! }), (_k, v) =>
      typeof v === "bigint" ? String(v) : v,
    );
    expect(body).not.toMatch(/encrypted|wrapped/i);
    expect(await rejection(kms.getDataKey({ version: 4_000_000_000 }))).toMatchObject({
      code: Code.NotFound,
    });
    expect(await rejection(kms.getDataKey({ version: 99999 }))).toMatchObject({
      code: Code.NotFound,
      reason: "KEY_NOT_FOUND",
    });
    expect(await rejection(kms.listDataKeys({ pageToken: "bogus" }))).toMatchObject({
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

  it("a restart with the same root key decrypts everything; another root key refuses to start", async () => {
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
