import { describe, expect, it } from "vitest";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import { migratorOptions } from "../../internal/migrate/options.js";
import { run } from "../../internal/migrate/runner.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { useTestApps } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";

// Each encrypted field's key version lives in a column beside it (000010),
// written by the service: SQL never parses a ciphertext.

const silent = createLogger({ level: "silent", format: "json" });
// A database migrated by hand first; the service starts on it later.
const ctx = useTestApps();

/** A ciphertext header (format 1) naming `version`, with filler after it. */
function sealedUnder(version: number): Buffer {
  const header = Buffer.alloc(6);
  header[0] = 1;
  header.writeUInt32BE(version, 2);
  return Buffer.concat([header, Buffer.alloc(40)]);
}

interface Versions {
  username: string;
  email_key_version: number | null;
  phone_key_version: number | null;
  name_key_version: number | null;
  key_versions: number[];
}
const versionsOf = (username: string) =>
  query<Versions>(
    ctx.db.url,
    `SELECT username, email_key_version, phone_key_version, name_key_version, key_versions
       FROM users WHERE username = $1`,
    [username],
  ).then((rows) => rows[0]);

describe("key versions beside the ciphertexts", () => {
  it("are filled in for rows written before the columns existed", async () => {
    const opts = migratorOptions(undefined, ctx.db.url, silent);
    expect((await run(opts, { kind: "up", count: 9 })).failed).toBeUndefined();
    await query(
      ctx.db.url,
      `INSERT INTO users (username, password, email_encrypted, name_encrypted, key_versions)
       VALUES ('older', 'x', $1, $2, '{3,5}'), ('bare', 'x', NULL, NULL, '{}')`,
      [sealedUnder(3), sealedUnder(5)],
    );
    expect((await run(opts, { kind: "up" })).failed).toBeUndefined();
    expect(await versionsOf("older")).toMatchObject({
      email_key_version: 3,
      phone_key_version: null,
      name_key_version: 5,
      key_versions: [3, 5],
    });
    expect(await versionsOf("bare")).toMatchObject({
      email_key_version: null,
      name_key_version: null,
    });
    await query(ctx.db.url, "DELETE FROM users");
  });

  it("follow every write, and the key usage counts follow them", async () => {
    const app = await ctx.start();
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` });
    const users = createClient(UserService, transport);
    const kms = createClient(KmsService, transport);
    const first = (await kms.getStatus({})).activeKey!.version;
    const { user } = await users.createUser({
      username: "tracked",
      password: "passw0rd-long",
      email: "tracked@example.com",
      phone: "+15550001111",
    });
    expect(await versionsOf("tracked")).toMatchObject({
      email_key_version: first,
      phone_key_version: first,
      name_key_version: null,
      key_versions: [first, first],
    });
    const second = (await kms.rotateDataKey({ reason: "test" })).key!.version;
    await users.updateUser({
      id: user!.id,
      name: "Tracked Person",
      phone: "",
      updateMask: { paths: ["name", "phone"] },
    });
    expect(await versionsOf("tracked")).toMatchObject({
      email_key_version: first,
      phone_key_version: null,
      name_key_version: second,
      key_versions: [first, second],
    });
    const usage = (await kms.getStatus({})).keyUsage;
    expect(usage.map((u) => [u.version, u.protectedValues])).toEqual([
      [first, 1n],
      [second, 1n],
    ]);
  });
});
