import { createHash } from "node:crypto";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { AuditEventKind, KmsService, type AuditEvent } from "../../api/kms/v1/kms_pb.js";
import { useTestApp } from "../helpers/app.js";
import { rejection } from "../helpers/errors.js";

const token = "ops-token-for-the-audit-test";
const ctx = useTestApp({
  instances: 2,
  config: {
    auth: {
      enabled: true,
      tokens: [
        {
          name: "ops",
          sha256: createHash("sha256").update(token).digest("hex"),
          scopes: ["kms.admin"],
        },
      ],
    },
  },
});

const headers = { authorization: `Bearer ${token}` };
const kmsOn = (i: number, protocol: "grpc" | "connect" = "grpc") => {
  const app = ctx.apps[i]!;
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` })
      : createConnectTransport({
          baseUrl: `http://127.0.0.1:${app.httpPort}`,
          httpVersion: "1.1",
        });
  return createClient(KmsService, transport);
};

async function allEvents(pageSize = 3): Promise<AuditEvent[]> {
  const events: AuditEvent[] = [];
  let pageToken = "";
  do {
    const page = await kmsOn(0).listAuditEvents({ pageSize, pageToken }, { headers });
    events.push(...page.events);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return events;
}

/** As a database superuser, bypassing the table's triggers (as an intruder could). */
async function asSuperuser(sql: string, params: unknown[] = []) {
  const client = new pg.Client({ connectionString: ctx.db.url });
  await client.connect();
  try {
    await client.query("BEGIN");
    await client.query("SET LOCAL session_replication_role = replica");
    await client.query(sql, params);
    await client.query("COMMIT");
  } finally {
    await client.end();
  }
}

describe("the audit trail", () => {
  it("records key changes and re-encryption with who asked, newest first, paged", async () => {
    const kms = kmsOn(0);
    const rotated = await kms.rotateDataKey({ reason: "quarterly" }, { headers });
    await kmsOn(1, "connect").revokeDataKey(
      { version: rotated.previousVersion, reason: "leaked laptop" },
      { headers },
    );
    await kms.startReencryption({ batchSize: 10 }, { headers });
    await kms.stopReencryption({}, { headers });

    const events = await allEvents();
    expect(events.map((e) => Number(e.seq))).toEqual(
      Array.from({ length: events.length }, (_, i) => events.length - i),
    );
    const oldestFirst = [...events].reverse();
    expect(oldestFirst[0]).toMatchObject({
      kind: AuditEventKind.KEY_GENERATED,
      actor: "system",
      details: { version: "1", reason: "initial key" },
    });
    const kinds = oldestFirst.map((e) => e.kind);
    expect(kinds).toEqual([
      AuditEventKind.KEY_GENERATED,
      AuditEventKind.KEY_ROTATED,
      AuditEventKind.KEY_REVOKED,
      AuditEventKind.REENCRYPTION_STARTED,
      // Stopped, or finished first when the job found nothing to move.
      expect.toSatisfy(
        (k: AuditEventKind) =>
          k === AuditEventKind.REENCRYPTION_STOPPED || k === AuditEventKind.REENCRYPTION_FINISHED,
      ),
    ]);
    expect(oldestFirst[1]).toMatchObject({
      actor: "ops",
      details: {
        version: String(rotated.key!.version),
        previous_version: String(rotated.previousVersion),
        reason: "quarterly",
      },
    });
    expect(oldestFirst[2]).toMatchObject({
      actor: "ops",
      details: { version: String(rotated.previousVersion), reason: "leaked laptop" },
    });
    expect(oldestFirst[3]!.actor).toBe("ops");
    for (const e of events) {
      expect(e.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(e.time).toBeDefined();
    }
  });

  it("verifies the chain, and its last hash is the newest event's", async () => {
    const newest = (await kmsOn(0).listAuditEvents({ pageSize: 1 }, { headers })).events[0]!;
    const v = await kmsOn(1).verifyAuditTrail({}, { headers });
    expect(v).toMatchObject({ intact: true, firstBadSeq: 0n, problem: "" });
    expect(v.eventsChecked).toBe(newest.seq);
    expect(v.lastHash).toBe(newest.hash);
  });

  it("keeps one unbroken chain when both instances change keys at once", async () => {
    const before = (await kmsOn(0).listAuditEvents({ pageSize: 1 }, { headers })).events[0]!.seq;
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        kmsOn(i % 2).rotateDataKey({ reason: `concurrent ${i}` }, { headers }),
      ),
    );
    const v = await kmsOn(0).verifyAuditTrail({}, { headers });
    expect(v.intact, v.problem).toBe(true);
    expect(v.eventsChecked).toBe(before + 8n);
  });

  it.each([
    ["UPDATE", "UPDATE kms_audit_events SET actor = 'someone else' WHERE seq = 2"],
    ["DELETE", "DELETE FROM kms_audit_events WHERE seq = 2"],
    ["TRUNCATE", "TRUNCATE kms_audit_events"],
  ])("the database refuses %s, changing nothing", async (_op, sql) => {
    const before = await allEvents(100);
    const client = new pg.Client({ connectionString: ctx.db.url });
    await client.connect();
    try {
      await expect(client.query(sql)).rejects.toMatchObject({ code: "KR002" });
    } finally {
      await client.end();
    }
    expect(await allEvents(100)).toEqual(before);
  });

  it("reports an event altered behind the database's back, and is intact again once restored", async () => {
    const [event] = (await allEvents(100)).filter((e) => e.seq === 2n);
    await asSuperuser(
      `UPDATE kms_audit_events SET details = details || '{"reason": "routine"}' WHERE seq = 2`,
    );
    const v = await kmsOn(0).verifyAuditTrail({}, { headers });
    expect(v).toMatchObject({ intact: false, firstBadSeq: 2n, problem: "event 2 was altered" });
    expect(v.eventsChecked).toBe(1n);
    await asSuperuser("UPDATE kms_audit_events SET details = $1 WHERE seq = 2", [event!.details]);
    expect((await kmsOn(0).verifyAuditTrail({}, { headers })).intact).toBe(true);
  });

  it("reports an event a superuser removed", async () => {
    await asSuperuser("DELETE FROM kms_audit_events WHERE seq = 3");
    const v = await kmsOn(1).verifyAuditTrail({}, { headers });
    expect(v).toMatchObject({ intact: false, firstBadSeq: 4n, problem: "event 3 is missing" });
    expect(v.eventsChecked).toBe(2n);
  });

  it("refuses a page token from another listing, and callers without kms.admin", async () => {
    const keys = await kmsOn(0).listDataKeys({ pageSize: 1 }, { headers });
    const wrongToken = await rejection(
      kmsOn(0).listAuditEvents({ pageToken: keys.nextPageToken }, { headers }),
    );
    expect(wrongToken).toMatchObject({
      code: Code.InvalidArgument,
      reason: "INVALID_PAGE_TOKEN",
    });
    const anonymous = await rejection(kmsOn(0).verifyAuditTrail({}));
    expect(anonymous.code).toBe(Code.Unauthenticated);
  });
});
