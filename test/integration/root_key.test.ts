import { randomBytes } from "node:crypto";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { AuditEventKind, KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService, View } from "../../api/user/v1/user_pb.js";
import type { App } from "../../cmd/server/wire.js";
import { rootKeyId } from "../../internal/pkg/kms/rootkey.js";
import { testRootKey, useTestApps } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { rejection } from "../helpers/errors.js";
import { spawnScript } from "../helpers/process.js";

// A rolling deploy of a new root key: instances on the old key, instances
// holding the new key and the previous one, the rotation, and afterwards.

const oldKey = testRootKey;
const newKey = randomBytes(32).toString("base64");
const idOf = (base64: string) => rootKeyId(Buffer.from(base64, "base64"));
const inAnHour = new Date(Date.now() + 3600_000).toISOString();
const anHourAgo = new Date(Date.now() - 3600_000).toISOString();

const onlyOld = { kms: { root_key: oldKey } };
const both = (until = inAnHour) => ({
  kms: { root_key: newKey, previous_root_key: { root_key: oldKey, until } },
});
const onlyNew = { kms: { root_key: newKey } };

const clients = (app: App) => {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` });
  return { kms: createClient(KmsService, transport), users: createClient(UserService, transport) };
};

describe("rotating the root key", () => {
  const ctx = useTestApps();

  it("serves throughout a rolling deploy, re-wraps every stored key once, and then refuses the old key", async () => {
    const old = clients(await ctx.start(onlyOld));
    expect((await old.kms.getStatus({})).rootKeyId).toBe(idOf(oldKey));
    const { user } = await old.users.createUser({
      username: "rolling",
      password: "passw0rd-long",
      email: "rolling@example.com",
      name: "Rolling Deploy",
    });
    const sealed = await old.kms.encryptField({
      fieldName: "orders.card",
      plaintext: Buffer.from("4111"),
    });

    // The new configuration rolls out beside the old one.
    const next = clients(await ctx.start(both()));
    const next2 = clients(await ctx.start(both()));
    expect((await next.users.getUser({ id: user!.id, view: View.FULL })).user!.email).toBe(
      "rolling@example.com",
    );
    // Keys made during the rollout stay under the old root key, which every
    // instance still holds: an old instance encrypts under them.
    const during = await next.kms.rotateDataKey({ reason: "during the rollout" });
    for (let i = 0; ; i++) {
      const r = await old.kms.encryptField({
        fieldName: "orders.card",
        plaintext: Buffer.from("x"),
      });
      if (r.keyVersion === during.key!.version) break;
      if (i > 200) throw new Error("the old instance never used the new data key");
      await new Promise((r) => setTimeout(r, 20));
    }

    // Every instance holds both keys now (the old one is retired): rotate.
    const rotated = await next.kms.rotateRootKey({});
    const keysStored = (await next.kms.listDataKeys({ pageSize: 1000 })).keys.length;
    expect(rotated).toMatchObject({
      rotated: true,
      rewrappedKeys: keysStored + 2, // and the index and audit keys
      rootKeyId: idOf(newKey),
      previousRootKeyId: idOf(oldKey),
    });
    expect((await next2.kms.getStatus({})).rootKeyId).toBe(idOf(newKey));
    // Asked again, anywhere: nothing more to do.
    expect((await next2.kms.rotateRootKey({})).rotated).toBe(false);

    // Every value still reads, on either new instance, and new keys go under the new root key.
    for (const c of [next, next2]) {
      expect((await c.users.getUser({ id: user!.id, view: View.FULL })).user!.name).toBe(
        "Rolling Deploy",
      );
      const opened = await c.kms.decryptField({
        fieldName: "orders.card",
        ciphertext: sealed.ciphertext,
      });
      expect(Buffer.from(opened.plaintext).toString()).toBe("4111");
    }
    const after = await next2.kms.rotateDataKey({ reason: "after" });
    const onlyNewApp = clients(await ctx.start(onlyNew));
    const { keyVersion } = await onlyNewApp.kms.encryptField({
      fieldName: "orders.card",
      plaintext: Buffer.from("y"),
    });
    expect(keyVersion).toBe(after.key!.version);
    expect((await onlyNewApp.users.getUser({ id: user!.id, view: View.FULL })).user!.phone).toBe(
      "",
    );

    // An instance that still has only the old key refuses to start.
    await expect(ctx.start(onlyOld)).rejects.toThrow(/wrong root key \(refusing to start\)/);

    // The rotation is in the audit trail.
    const events = (await next.kms.listAuditEvents({ pageSize: 100 })).events;
    const event = events.find((e) => e.kind === AuditEventKind.ROOT_KEY_ROTATED)!;
    expect(event.details).toEqual({
      from_root_key_id: idOf(oldKey),
      to_root_key_id: idOf(newKey),
      rewrapped_keys: String(rotated.rewrappedKeys),
    });
    expect((await next.kms.verifyAuditTrail({})).intact).toBe(true);
  });

  it("with a previous key past its window, starts on a database already rotated, ignoring it", async () => {
    const late = clients(await ctx.start(both(anHourAgo)));
    expect((await late.kms.getStatus({})).rootKeyId).toBe(idOf(newKey));
    expect(await late.kms.rotateRootKey({})).toMatchObject({
      rotated: false,
      rootKeyId: idOf(newKey),
      previousRootKeyId: "",
    });
  });

  it("answers RotateRootKey with nothing to do once the previous key is gone from the configuration", async () => {
    const app = clients(await ctx.start(onlyNew));
    expect(await app.kms.rotateRootKey({})).toMatchObject({ rotated: false, rewrappedKeys: 0 });
  });
});

describe("a window that ended before the rotation", () => {
  const ctx = useTestApps();

  it("refuses to start, saying what to do, while the stored keys are under the previous key", async () => {
    await ctx.start(onlyOld);
    await expect(ctx.start(both(anHourAgo))).rejects.toThrow(
      /still wrapped under kms.previous_root_key, whose window ended at .*extend kms.previous_root_key.until/,
    );
    // A previous key that is not the database's is no way around a wrong root key.
    const stranger = randomBytes(32).toString("base64");
    await expect(
      ctx.start({
        kms: { root_key: newKey, previous_root_key: { root_key: stranger, until: inAnHour } },
      }),
    ).rejects.toThrow(/wrong root key/);
  });

  it("adopts a database from before kms_root_key by the key that unwraps its index key", async () => {
    await query(ctx.db.url, "DELETE FROM kms_root_key");
    const next = clients(await ctx.start(both()));
    expect((await next.kms.getStatus({})).rootKeyId).toBe(idOf(oldKey));
    expect((await next.kms.rotateRootKey({})).rotated).toBe(true);
  });

  it("refuses a rotation from a key the database is no longer under (two operators, two new keys)", async () => {
    const [k3, k4] = [randomBytes(32), randomBytes(32)].map((k) => k.toString("base64"));
    const from = (key: string) => ({
      kms: { root_key: key, previous_root_key: { root_key: newKey, until: inAnHour } },
    });
    const first = clients(await ctx.start(from(k3!)));
    const second = clients(await ctx.start(from(k4!)));
    expect((await first.kms.rotateRootKey({})).rotated).toBe(true);
    const refused = await rejection(second.kms.rotateRootKey({}));
    expect(refused).toMatchObject({ code: Code.FailedPrecondition, reason: "ROOT_KEY_MISMATCH" });
    expect((await first.kms.getStatus({})).rootKeyId).toBe(idOf(k3!));
  });
});

describe("kms root-key rotate", () => {
  const ctx = useTestApps();
  const kms = async (app: App, args: string[]) => {
    const proc = spawnScript(
      "cmd/kms/main.ts",
      ["root-key", ...args, "--addr", `127.0.0.1:${app.grpcPort}`],
      { env: { KMS_TOKEN: undefined } },
    );
    let stdout = "";
    proc.child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    return { code: await proc.exited, stdout, output: proc.output() };
  };

  it("rotates from a deploy script, says so (exit 0) when there is nothing to do, and exits 2 on a careless command line", async () => {
    await ctx.start(onlyOld);
    const app = await ctx.start(both());
    const first = await kms(app, ["rotate", "--json"]);
    expect(first.code, first.output).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({
      rotated: true,
      rootKeyId: idOf(newKey),
      previousRootKeyId: idOf(oldKey),
    });
    const again = await kms(app, ["rotate"]);
    expect(again.code, again.output).toBe(0);
    expect(again.stdout).toMatch(/already under root key [0-9a-f]{32}: nothing to do/);
    const without = await kms(await ctx.start(onlyNew), ["rotate"]);
    expect(without.code, without.output).toBe(0);
    expect(without.stdout).toMatch(/nothing to do/);
    const careless = await kms(app, ["spin"]);
    expect(careless.code).toBe(2);
  }, 60_000);
});
