import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import type { App } from "../../cmd/server/wire.js";
import { startTestApp } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { createUserLoad, sleep, tally } from "./load.js";

describe("revocation across two instances under write load", () => {
  let db: TestDatabase | undefined;
  const apps: App[] = [];
  afterAll(async () => {
    for (const app of apps) await app.stop();
    await db?.drop();
  });

  it("stores no value under the revoked key once RevokeDataKey has returned", async () => {
    db = await createTestDatabase();
    const a = await startTestApp(db.url);
    apps.push(a);
    const b = await startTestApp(db.url);
    apps.push(b);
    const kms = createClient(
      KmsService,
      createConnectTransport({ baseUrl: `http://127.0.0.1:${a.httpPort}`, httpVersion: "1.1" }),
    );
    const load = createUserLoad(b.grpcPort, { prefix: "revoke" });
    await sleep(1000);
    const version = (await kms.getStatus({})).activeKey!.version;
    await kms.revokeDataKey({ version, reason: "reliability" });
    const revokedAt = Date.now();
    await sleep(1500);
    const outcomes = await load.stop();

    const codes = tally(outcomes);
    expect(Object.keys(codes), JSON.stringify(codes)).toEqual(["OK"]);
    const after = outcomes.filter((o) => o.sentAt > revokedAt && o.code === grpc.status.OK);
    expect(after.length).toBeGreaterThan(0);
    const rows = await query<{ username: string; key_versions: number[] }>(
      db.url,
      "SELECT username, key_versions FROM users WHERE username = ANY($1)",
      [after.map((o) => o.username)],
    );
    expect(rows.length).toBe(after.length);
    for (const r of rows) expect(r.key_versions, r.username).not.toContain(version);
  });
});
