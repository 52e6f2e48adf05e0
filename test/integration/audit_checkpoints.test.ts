import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { wireApp, type App } from "../../cmd/server/wire.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { testConfig, testRootKey } from "../helpers/app.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { rejection } from "../helpers/errors.js";
import { spawnScript } from "../helpers/process.js";

// Checkpoints of the audit trail's head, written where the database cannot
// reach, and `kms audit verify --checkpoint` comparing the chain with them:
// a cut tail or a replaced trail shows, as it did not before.

const dir = mkdtempSync(join(tmpdir(), "kbts-audit-cp-"));
const token = randomBytes(16).toString("hex");
const headers = { authorization: `Bearer ${token}` };
const auth = {
  enabled: true,
  tokens: [
    {
      name: "ops",
      sha256: createHash("sha256").update(token).digest("hex"),
      scopes: ["kms.admin"],
    },
  ],
};

interface Running {
  app: App;
  logs: () => string;
}
const running: Running[] = [];
const databases: TestDatabase[] = [];
const posted: unknown[] = [];
let sink: Server;
let sinkUrl: string;

beforeAll(async () => {
  sink = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      posted.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => sink.listen(0, "127.0.0.1", r));
  sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/checkpoints`;
});
afterAll(async () => {
  for (const r of running) await r.app.stop();
  for (const db of databases) await db.drop();
  await new Promise((r) => sink.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function newDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}

/** The service in process, its log kept, writing checkpoints as `checkpoints` says. */
async function start(db: TestDatabase, checkpoints: Record<string, unknown>): Promise<Running> {
  const out = new PassThrough();
  let logs = "";
  out.on("data", (c: Buffer) => (logs += c.toString()));
  const conf = testConfig(db.url, {
    auth,
    kms: { root_key: testRootKey, audit_checkpoints: checkpoints },
  });
  const app = await wireApp(
    conf,
    createLogger({ level: "info", format: "json", destination: out }),
  );
  const r = { app, logs: () => logs };
  running.push(r);
  return r;
}

const kmsOf = (app: App) =>
  createClient(KmsService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` }));

async function headSeq(app: App): Promise<number> {
  const { events } = await kmsOf(app).listAuditEvents({ pageSize: 1 }, { headers });
  return Number(events[0]?.seq ?? 0);
}

/** The newest checkpoint line of a file, as JSON. */
function newestIn(file: string): { seq: number; headHash: string; at: string; mac: string } {
  const lines = readFileSync(file, "utf8").trim().split("\n");
  return JSON.parse(lines.at(-1)!) as { seq: number; headHash: string; at: string; mac: string };
}

async function metric(app: App, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${app.httpPort}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

async function auditVerify(app: App, args: string[]) {
  const proc = spawnScript(
    "cmd/kms/main.ts",
    ["audit", "verify", "--addr", `127.0.0.1:${app.grpcPort}`, ...args],
    { env: { KMS_TOKEN: token } },
  );
  let stdout = "";
  proc.child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  const code = await proc.exited;
  return { code, stdout, output: proc.output() };
}

/** As a database superuser, bypassing the table's triggers (as an intruder could). */
async function asSuperuser(db: TestDatabase, sql: string) {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    await client.query("BEGIN");
    await client.query("SET LOCAL session_replication_role = replica");
    await client.query(sql);
    await client.query("COMMIT");
  } finally {
    await client.end();
  }
}

const generous = { timeout: 30_000, interval: 50 };

describe("audit checkpoints, with a trail cut at its end", () => {
  const file = join(dir, "a.jsonl");
  let db: TestDatabase;
  let first: Running;

  beforeAll(async () => {
    db = await newDatabase();
    first = await start(db, {
      file,
      http_url: sinkUrl,
      every_events: 1,
      poll_interval: "50ms",
    });
  });

  it("When keys change, Then signed checkpoints of the head reach the log, the file and the HTTP sink", async () => {
    const kms = kmsOf(first.app);
    await kms.rotateDataKey({ reason: "one" }, { headers });
    await kms.rotateDataKey({ reason: "two" }, { headers });
    const head = await headSeq(first.app);
    expect(head).toBe(3);

    await vi.waitFor(() => expect(newestIn(file).seq).toBe(head), generous);
    const newest = newestIn(file);
    expect(newest.headHash).toBe(
      (await kms.listAuditEvents({ pageSize: 1 }, { headers })).events[0]!.hash,
    );
    expect(newest.mac).toMatch(/^[0-9a-f]{64}$/);
    await vi.waitFor(() => expect(posted).toContainEqual(newest), generous);
    const logged = first
      .logs()
      .split("\n")
      .filter((l) => l.includes('"msg":"audit checkpoint"'))
      .map((l) => (JSON.parse(l) as { checkpoint: unknown }).checkpoint);
    expect(logged).toContainEqual(newest);
    expect(first.logs()).toContain("audit trail checked at start-up");
    expect(await metric(first.app, "audit_chain_intact")).toBe(1);
    expect(await metric(first.app, "audit_checkpoint_seq")).toBe(head);
  });

  it("When the trail is whole, Then `kms audit verify --checkpoint` exits 0, from the file or from the log", async () => {
    const r = await auditVerify(first.app, ["--checkpoint", file]);
    expect(r.code, r.output).toBe(0);
    expect(r.stdout).toMatch(
      /^intact: 3 events checked, agreeing with the checkpoint of .* \(event 3\)/,
    );

    const log = join(dir, "service.log");
    writeFileSync(log, first.logs());
    const j = await auditVerify(first.app, ["--checkpoint", log, "--json"]);
    expect(j.code, j.output).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({
      intact: true,
      eventsChecked: 3,
      checkpoint: { seq: 3 },
    });
  });

  it("When a checkpoint is forged, Then the service refuses it and the verifier exits 2", async () => {
    const real = newestIn(file);
    const forged = { ...real, seq: 2 };
    const refused = await rejection(
      kmsOf(first.app).verifyAuditTrail(
        {
          checkpoint: {
            seq: BigInt(forged.seq),
            headHash: forged.headHash,
            time: timestampFromDate(new Date(forged.at)),
            mac: forged.mac,
          },
        },
        { headers },
      ),
    );
    expect(refused).toMatchObject({
      code: Code.InvalidArgument,
      reason: "VALIDATION_FAILED",
      metadata: { field: "checkpoint" },
    });
    expect(refused.message).toMatch(/signature does not verify/);
    // Values no Date or safe integer holds are forgeries too, not INTERNAL.
    for (const [seq, seconds] of [
      [BigInt(real.seq), 10n ** 15n],
      [2n ** 63n, BigInt(Math.floor(Date.parse(real.at) / 1000))],
    ] as const) {
      expect(
        await rejection(
          kmsOf(first.app).verifyAuditTrail(
            {
              checkpoint: {
                seq,
                headHash: real.headHash,
                time: { seconds, nanos: 0 },
                mac: real.mac,
              },
            },
            { headers },
          ),
        ),
      ).toMatchObject({ code: Code.InvalidArgument, metadata: { field: "checkpoint" } });
    }

    const path = join(dir, "forged.jsonl");
    writeFileSync(path, `${JSON.stringify(forged)}\n`);
    const r = await auditVerify(first.app, ["--checkpoint", path]);
    expect(r.code, r.output).toBe(2);
    expect(r.output).toMatch(
      /could not check the audit trail: INVALID_ARGUMENT.*signature does not verify/,
    );
  });

  it("When the checkpoint file is missing, holds none or a malformed one, Then the verifier exits 2 naming the problem", async () => {
    const garbage = join(dir, "garbage.jsonl");
    writeFileSync(garbage, 'not json at all\n{"level":30}\n');
    const malformed = join(dir, "malformed.jsonl");
    writeFileSync(malformed, `${JSON.stringify({ ...newestIn(file), headHash: "abc" })}\n`);
    for (const [path, message] of [
      [join(dir, "absent.jsonl"), /--checkpoint: cannot read .*absent\.jsonl: ENOENT/],
      ["", /--checkpoint is empty \(an unset shell variable\?\)/],
      [garbage, /--checkpoint: .*garbage\.jsonl holds no checkpoint/],
      [malformed, /--checkpoint: .*malformed\.jsonl: line 1: not a checkpoint: headHash/],
    ] as const) {
      const r = await auditVerify(first.app, ["--checkpoint", path, "--json"]);
      expect(r.code, r.output).toBe(2);
      expect(r.output).toMatch(message);
      expect(JSON.parse(r.stdout)).toMatchObject({ exitCode: 2 });
    }
  });

  it("When the newest events are deleted, Then the verifier exits 1, the running service notices, and a restart reports it", async () => {
    await asSuperuser(db, "DELETE FROM kms_audit_events WHERE seq > 1");
    // Without a checkpoint the cut does not show: that is the blind spot.
    const blind = await kmsOf(first.app).verifyAuditTrail({}, { headers });
    expect(blind.intact).toBe(true);

    const r = await auditVerify(first.app, ["--checkpoint", file]);
    expect(r.code, r.output).toBe(1);
    expect(r.stdout).toMatch(
      /^BROKEN at event 2: the trail ends at event 1, but the checkpoint of .* recorded event 3: newer events were removed/,
    );

    await vi.waitFor(
      async () => expect(await metric(first.app, "audit_chain_intact")).toBe(0),
      generous,
    );
    expect(first.logs()).toMatch(/"problem":"the trail ends at event 1, but this service's check/);
    // It writes no checkpoint of the cut trail, even as it grows again.
    await kmsOf(first.app).rotateDataKey({ reason: "after the cut" }, { headers });
    await kmsOf(first.app).rotateDataKey({ reason: "after the cut" }, { headers });
    const again = await start(db, { file, every_events: 1, poll_interval: "50ms" });
    expect(await metric(again.app, "audit_chain_intact")).toBe(0);
    expect(await metric(again.app, "audit_checkpoint_seq")).toBe(0);
    expect(again.logs()).toMatch(
      /event 3 is not the one the checkpoint of .* recorded: the trail was replaced/,
    );
    expect(newestIn(file).seq).toBe(3);
  });
});

describe("audit checkpoints, configured carelessly", () => {
  it("When the checkpoint file cannot be opened, Then start-up stops naming the setting", async () => {
    const db = await newDatabase();
    const path = join(dir, "no-such-dir", "cp.jsonl");
    await expect(start(db, { file: path })).rejects.toThrow(
      `kms.audit_checkpoints.file: cannot open ${path} for appending: ENOENT`,
    );
  });
});

describe("audit checkpoints, with a trail wiped and begun anew", () => {
  it("When every event is deleted and keys rotate again, Then the verifier exits 1 and start-up reports it", async () => {
    const db = await newDatabase();
    const file = join(dir, "b.jsonl");
    const before = await start(db, {
      file,
      // A sink that fails is logged, never fatal.
      http_url: "http://127.0.0.1:1/refused",
      http_timeout: "2s",
      every_events: 1,
      poll_interval: "50ms",
    });
    for (const reason of ["one", "two"])
      await kmsOf(before.app).rotateDataKey({ reason }, { headers });
    await vi.waitFor(() => expect(newestIn(file).seq).toBe(3), generous);
    await vi.waitFor(
      () =>
        expect(before.logs()).toMatch(/"sink":"http".*audit checkpoint not written to its sink/),
      generous,
    );
    await before.app.stop();
    running.splice(running.indexOf(before), 1);

    await asSuperuser(db, "DELETE FROM kms_audit_events");
    const after = await start(db, { file, every_events: 1, poll_interval: "50ms" });
    expect(await metric(after.app, "audit_chain_intact")).toBe(0);
    // The keys still serve; the new chain is whole in itself.
    for (const reason of ["a", "b", "c", "d"])
      await kmsOf(after.app).rotateDataKey({ reason }, { headers });
    expect(await headSeq(after.app)).toBe(4);
    expect((await kmsOf(after.app).verifyAuditTrail({}, { headers })).intact).toBe(true);

    const r = await auditVerify(after.app, ["--checkpoint", file, "--json"]);
    expect(r.code, r.output).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      intact: false,
      firstBadSeq: 3,
      problem: expect.stringMatching(
        /event 3 is not the one the checkpoint of .* recorded: the trail was replaced/,
      ),
    });
    expect(newestIn(file).seq).toBe(3);
  });
});
