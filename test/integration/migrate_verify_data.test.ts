import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UserService } from "../../api/user/v1/user_pb.js";
import type { DataVerification } from "../../internal/biz/data_verify.js";
import { query } from "../helpers/catalog.js";
import { startTestApp } from "../helpers/app.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { runMigrate, spawnMigrate, writeServerConfig } from "../helpers/process.js";

// `migrate verify --data` as an operator runs it: the migrate tool with the
// server's config (its kms section), against users the service created.
// A clean database exits 0 with counts; a value moved from another row and a
// zeroed blind index are both counted, exit 1, and no plaintext is printed;
// --from counts only the rows after it; without the KMS it exits 2.

const dir = mkdtempSync(join(tmpdir(), "kbts-verify-data-"));
let db: TestDatabase;
let conf: string;
const ids: number[] = [];
const people = [1, 2, 3, 4].map((n) => ({
  username: `verify_${n}`,
  password: "passw0rd-long",
  email: `verify.person${n}@example.com`,
  phone: `+86138001${String(40000 + n)}`,
  name: `Verify Person ${n}`,
}));
const plaintexts = people.flatMap((p) => [p.email, p.phone, p.name]);

beforeAll(async () => {
  db = await createTestDatabase();
  const app = await startTestApp(db.url);
  try {
    const users = createClient(
      UserService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` }),
    );
    for (const p of people) ids.push(Number((await users.createUser(p)).user!.id));
  } finally {
    await app.stop();
  }
  conf = writeServerConfig(join(dir, "server.yaml"), db.url);
  // The server applied all but the contracts: complete them, so that
  // `up --verify` below has nothing to apply.
  const contract = await runMigrate(["up", "--phase", "contract", "-conf", conf], {
    env: { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined },
  });
  if (contract.code !== 0) throw new Error(contract.output);
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** The tool as a deploy script runs it: the database and the KMS from the server's config alone. */
const verify = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runMigrate(["verify", "--data", ...args], {
    env: { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined, ...env },
  });

/** `up --verify` with the server's config: nothing to apply, both halves checked. */
const upVerify = (args: string[]) =>
  runMigrate(["up", "--verify", "-conf", conf, ...args], {
    env: { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined },
  });

/** Everything the tables hold that a write could change, as one digest. */
const snapshot = async () =>
  (
    await query(
      db.url,
      `SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) AS d FROM (
         SELECT u::text AS t FROM users u UNION ALL SELECT k::text FROM kms_data_keys k
         UNION ALL SELECT i::text FROM kms_index_keys i UNION ALL SELECT a::text FROM kms_audit_events a) s`,
    )
  )[0]!.d as string;

const sum = (counts: { ok: number; failed: number }[]) =>
  counts.reduce((s, c) => ({ ok: s.ok + c.ok, failed: s.failed + c.failed }), { ok: 0, failed: 0 });

describe("migrate verify --data", () => {
  it("on a clean database: exit 0, every value and index counted by column and key version, nothing written", async () => {
    const before = await snapshot();
    const text = await verify(["-conf", conf]);
    expect(text.code, text.output).toBe(0);
    expect(text.stdout).toMatch(/^data: 4 row\(s\) after id 0 checked/);
    expect(text.stdout).toMatch(/sealed {2}users\.email_encrypted +key 1 +ok 4 {2}failed 0/);
    expect(text.stdout).toMatch(/index {3}users\.phone_hash +epoch 1 +ok 4 {2}failed 0/);
    expect(text.stdout).toContain("ok: every sealed value opens");

    const json = await verify(["-conf", conf, "--json"]);
    expect(json.code, json.output).toBe(0);
    const v = JSON.parse(json.stdout) as DataVerification;
    expect(v).toMatchObject({ ok: true, complete: true, rows: 4, fromId: 0, lastId: ids.at(-1) });
    expect(v.failuresTotal).toBe(0);
    expect(v.sealed.map((c) => [c.column, c.keyVersion, c.ok, c.failed]).sort()).toEqual([
      ["email_encrypted", 1, 4, 0],
      ["name_encrypted", 1, 4, 0],
      ["phone_encrypted", 1, 4, 0],
    ]);
    expect(v.indexes.map((c) => [c.column, c.indexEpoch, c.ok, c.failed]).sort()).toEqual([
      ["email_hash", 1, 4, 0],
      ["name_hash", 1, 4, 0],
      ["phone_hash", 1, 4, 0],
    ]);
    // up --verify with the server's config checks both halves.
    const up = await upVerify([]);
    expect(up.code, up.output).toBe(0);
    expect(up.stdout).toContain("consistent: the schema is the one the applied migrations make");
    expect(up.stdout).toContain("ok: every sealed value opens");
    expect(await snapshot()).toBe(before);
    for (const p of plaintexts) expect(text.output + json.output + up.output).not.toContain(p);
  });

  it("--from resumes: only the rows after that id are checked", async () => {
    const from = ["--from", String(ids[1])];
    const r = await verify(["-conf", conf, "--json", ...from, "--batch-size", "1"]);
    expect(r.code, r.output).toBe(0);
    const v = JSON.parse(r.stdout) as DataVerification;
    expect(v).toMatchObject({ ok: true, rows: 2, fromId: ids[1], lastId: ids[3] });
    expect(sum(v.sealed)).toEqual({ ok: 6, failed: 0 });
  });

  it("interrupted, it says where it stopped; --from there checks the rest", async () => {
    // The table locked, the first batch waits; SIGINT arrives meanwhile, so
    // the run stops after that batch whatever the machine's speed.
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE");
      const run = spawnMigrate(["verify", "--data", "-conf", conf, "--batch-size", "2"], {
        env: { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined },
      });
      let stdout = "";
      run.child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
      for (;;) {
        // Asked outside the locker's transaction, which sees one snapshot of the activity.
        const rows = await query(
          db.url,
          `SELECT 1 FROM pg_stat_activity
            WHERE application_name = 'migrate verify --data' AND wait_event_type = 'Lock'`,
        );
        if (rows.length > 0) break;
        if (run.child.exitCode !== null) throw new Error(run.output());
        await new Promise((r) => setTimeout(r, 50));
      }
      run.child.kill("SIGINT");
      await run.waitFor(/SIGINT: stopping after the batch in hand/);
      await locker.query("COMMIT");
      expect(await run.exited, run.output()).toBe(130);
      expect(stdout).toContain(`interrupted after id ${ids[1]}: resume with --from ${ids[1]}`);
      expect(stdout).toMatch(/^data: 2 row\(s\) after id 0 checked/);
    } finally {
      await locker.end();
    }
    const rest = await verify(["-conf", conf, "--json", "--from", String(ids[1])]);
    expect(rest.code, rest.output).toBe(0);
    expect(JSON.parse(rest.stdout)).toMatchObject({ rows: 2, complete: true, lastId: ids[3] });
  });

  it("counts a value moved from another row and a zeroed blind index: exit 1, no plaintext printed", async () => {
    // The ciphertext is genuine, but bound to another row: it must not open here.
    await query(
      db.url,
      `UPDATE users SET email_encrypted = (SELECT email_encrypted FROM users WHERE id = $2) WHERE id = $1`,
      [ids[0], ids[1]],
    );
    await query(db.url, `UPDATE users SET phone_hash = repeat('0', 64) WHERE id = $1`, [ids[2]]);

    const json = await verify(["-conf", conf, "--json"]);
    expect(json.code, json.output).toBe(1);
    const v = JSON.parse(json.stdout) as DataVerification;
    expect(v).toMatchObject({ ok: false, complete: true, rows: 4, failuresTotal: 2 });
    expect(v.failures).toEqual([
      expect.objectContaining({ table: "users", id: ids[0], column: "email_encrypted" }),
      expect.objectContaining({ table: "users", id: ids[2], column: "phone_hash" }),
    ]);
    const column = (list: { column: string; ok: number; failed: number }[], name: string) =>
      sum(list.filter((c) => c.column === name));
    expect(column(v.sealed, "email_encrypted")).toEqual({ ok: 3, failed: 1 });
    expect(column(v.indexes, "phone_hash")).toEqual({ ok: 3, failed: 1 });
    // The moved email's index cannot be recomputed: not counted as ok.
    expect(v.indexes.find((c) => c.column === "email_hash")).toMatchObject({
      ok: 3,
      unchecked: 1,
    });

    const text = await verify(["-conf", conf]);
    expect(text.code, text.output).toBe(1);
    expect(text.stdout).toContain(
      `error: users ${ids[0]} email_encrypted: does not open under its row's context`,
    );
    expect(text.stdout).toContain(
      `error: users ${ids[2]} phone_hash: the index does not match its value`,
    );
    expect(text.stdout).toContain("failed: 2 value(s) or index(es) do not verify");
    const up = await upVerify(["--json"]);
    expect(up.code, up.output).toBe(1);
    expect(JSON.parse(up.stdout)).toMatchObject({
      verify: { consistent: true },
      verifyData: { ok: false, failuresTotal: 2 },
    });
    for (const p of plaintexts) expect(text.output + json.output + up.output).not.toContain(p);
  });

  it("cannot check without the KMS: exit 2, saying why", async () => {
    const noConf = await verify([], { DATABASE_URL: db.url });
    expect(noConf.code, noConf.output).toBe(2);
    expect(noConf.output).toMatch(
      /verify --data needs the KMS: -conf a config with its kms section/,
    );

    const keyless = join(dir, "keyless.yaml");
    writeFileSync(keyless, `data: { database: { source: "${db.url}" } }\n`);
    const noKey = await verify(["-conf", keyless, "--json"]);
    expect(noKey.code, noKey.output).toBe(2);
    expect(noKey.output).toMatch(/kms: set exactly one of root_key, root_key_file, seed/);
    expect(JSON.parse(noKey.stdout)).toMatchObject({ exitCode: 2 });

    const wrong = await verify(["-conf", keyless], {
      KMS_ROOT_KEY: Buffer.alloc(32, 9).toString("base64"),
    });
    expect(wrong.code, wrong.output).toBe(2);
    expect(wrong.output).toMatch(/wrong root key/);
  });

  it("on a database the service never started on: exit 2, and no key made", async () => {
    const fresh = await createTestDatabase();
    try {
      const up = await runMigrate(["up"], { env: { DATABASE_URL: fresh.url } });
      expect(up.code, up.output).toBe(0);
      const freshConf = writeServerConfig(join(dir, "fresh.yaml"), fresh.url);
      const r = await verify(["-conf", freshConf]);
      expect(r.code, r.output).toBe(2);
      expect(r.output).toMatch(/could not open the KMS: the database holds no index key/);
      const keys = await query(
        fresh.url,
        `SELECT (SELECT count(*) FROM kms_index_keys) + (SELECT count(*) FROM kms_audit_key)
              + (SELECT count(*) FROM kms_data_keys) + (SELECT count(*) FROM kms_root_key) AS n`,
      );
      expect(Number(keys[0]!.n)).toBe(0);
    } finally {
      await fresh.drop();
    }
  });

  it("refuses --from without --data, and a bad --from, with exit 2", async () => {
    const alone = await runMigrate(["verify", "--from", "3"], { env: { DATABASE_URL: db.url } });
    expect(alone.code).toBe(2);
    expect(alone.output).toMatch(/--from and --batch-size go with --data/);
    const bad = await verify(["-conf", conf, "--from", "-3"]);
    expect(bad.code).toBe(2);
    const word = await verify(["-conf", conf, "--from", "last"]);
    expect(word.code).toBe(2);
    expect(word.output).toMatch(/--from last: expected a whole number/);
  });
});
