import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { KeyStatus, KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import type { App } from "../../cmd/server/wire.js";
import { ADVISORY_LOCKS } from "../../internal/data/advisory_locks.js";
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
  // Ten creates at once from one caller: more than a caller's default share
  // of the password hashes, which this test is not about.
  const ctx = useTwoInstances({ limits: { password_hashes_per_caller: 16 } });

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

  it("a write racing a revocation that has not committed yet waits for it, then is refused", async () => {
    const onA = clientsOf(ctx.a);
    const version = (await onA.kms.getStatus({})).activeKey!.version;
    await onA.kms.rotateDataKey({ reason: "make it inactive" });
    const header = Buffer.alloc(6);
    header[0] = 1;
    header.writeUInt32BE(version, 2);
    const ciphertext = Buffer.concat([header, Buffer.alloc(40)]);
    // A revocation under way: the lock RevokeDataKey takes, the key marked, not committed.
    const revoker = new pg.Client({ connectionString: ctx.db.url });
    await revoker.connect();
    await revoker.query("BEGIN");
    await revoker.query("SELECT pg_advisory_xact_lock($1)", [ADVISORY_LOCKS.revocation]);
    await revoker.query("UPDATE kms_data_keys SET status = 'revoked' WHERE version = $1", [
      version,
    ]);
    const writer = new pg.Client({
      connectionString: ctx.db.url,
      application_name: "racing-writer",
    });
    await writer.connect();
    const write = writer
      .query(
        "INSERT INTO users (username, password_hash, email_encrypted, email_key_version) VALUES ('racing', 'x', $1, $2)",
        [ciphertext, version],
      )
      .then(
        () => "written",
        (e: { code?: string }) => e.code,
      );
    // The writer waits on the revocation's lock (seen in pg_stat_activity, not by timing).
    for (let i = 0; ; i++) {
      const waiting = await query(
        ctx.db.url,
        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'racing-writer' AND wait_event_type = 'Lock'",
      );
      if (waiting.length > 0) break;
      if (i > 300) throw new Error("the write did not wait for the revocation");
      await new Promise((r) => setTimeout(r, 20));
    }
    await revoker.query("COMMIT");
    await revoker.end();
    expect(await write).toBe("KR001");
    await writer.end();
  });

  it("the database itself refuses a value under a revoked key, and a ciphertext without its key version", async () => {
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
        "INSERT INTO users (username, password_hash, email_encrypted, email_key_version) VALUES ('forged', 'x', $1, $2)",
        [forged, revoked],
      ),
    ).rejects.toMatchObject({ code: "KR001" });
    // Without the version beside it, the check above could not see the key.
    await expect(
      query(
        ctx.db.url,
        "INSERT INTO users (username, password_hash, email_encrypted) VALUES ('unversioned', 'x', $1)",
        [forged],
      ),
    ).rejects.toMatchObject({ code: "23514", constraint: "users_email_key_version_present" });
  });
});
