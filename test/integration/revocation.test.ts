import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { KeyStatus, KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import type { App } from "../../cmd/server/wire.js";
import { useTwoInstances } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";

const clientsOf = (app: App) => {
  const transport = createConnectTransport({
    baseUrl: `http://127.0.0.1:${app.httpPort}`,
    httpVersion: "1.1",
  });
  return { kms: createClient(KmsService, transport), users: createClient(UserService, transport) };
};

let n = 0;
const newUser = () => {
  n++;
  return { username: `rev_${n}`, password: "passw0rd-long", email: `rev${n}@example.com` };
};

describe("revocation across instances", () => {
  const ctx = useTwoInstances();

  it("once RevokeDataKey returns, no instance stores a value under that key", async () => {
    const onA = clientsOf(ctx.a);
    const onB = clientsOf(ctx.b);
    // B has the active key cached.
    await onB.users.createUser(newUser());
    const version = (await onA.kms.getStatus({})).activeKey!.version;
    await onA.kms.revokeDataKey({ version, reason: "test" });
    // B writes at once, before or after hearing of it: never under `version`.
    const created = await Promise.all(
      Array.from({ length: 10 }, () => onB.users.createUser(newUser())),
    );
    const ids = created.map((c) => String(c.user!.id));
    const rows = await query<{ id: number; key_versions: number[] }>(
      ctx.db.url,
      "SELECT id, key_versions FROM users WHERE id = ANY($1::bigint[])",
      [ids],
    );
    expect(rows).toHaveLength(10);
    for (const r of rows) expect(r.key_versions).not.toContain(version);
    // And the users read back.
    for (const c of created)
      expect((await onB.users.getUser({ id: c.user!.id })).user?.email).toBe(c.user!.email);
  });

  it("the database itself refuses a ciphertext naming a revoked key", async () => {
    const onA = clientsOf(ctx.a);
    const keys = await onA.kms.listDataKeys({ status: KeyStatus.REVOKED });
    const revoked = keys.keys[0]?.version ?? 0;
    expect(revoked).toBeGreaterThan(0);
    const header = Buffer.alloc(6);
    header[0] = 1;
    header.writeUInt32BE(revoked, 2);
    const forged = Buffer.concat([header, Buffer.alloc(40)]);
    await expect(
      query(
        ctx.db.url,
        "INSERT INTO users (username, password, email_encrypted) VALUES ('forged', 'x', $1)",
        [forged],
      ),
    ).rejects.toMatchObject({ code: "KR001" });
  });
});
