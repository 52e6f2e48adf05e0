import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService, ReencryptionState } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import type { App } from "../../cmd/server/wire.js";
import { ADVISORY_LOCKS } from "../../internal/data/advisory_locks.js";
import { exclusively } from "../../internal/data/job_lock.js";
import { startTestApp, testRootKey } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { projectNames } from "../helpers/migrations.js";
import { PGBOUNCER, startPgbouncer, type Pgbouncer } from "../helpers/pgbouncer.js";
import { until } from "../helpers/poll.js";
import { runMigrate } from "../helpers/process.js";

// Two instances whose pool goes through a real PgBouncer in transaction
// mode (data.database.source) and whose sessions (LISTEN, the jobs' locks,
// migrations) go direct (data.database.direct_source). CI installs Debian's
// pgbouncer; elsewhere the file is skipped without it.

const available = existsSync(PGBOUNCER);
if (!available && process.env.CI) throw new Error(`${PGBOUNCER} is required under CI`);
if (!available)
  console.warn(`pgbouncer.test.ts skipped: ${PGBOUNCER} missing (apt-get install pgbouncer)`);

const clients = (app: App) => {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` });
  return { kms: createClient(KmsService, transport), users: createClient(UserService, transport) };
};
const enc = (s: string) => new TextEncoder().encode(s);

/** Who holds the session advisory lock `lock` in the current database: pid and application_name. */
const HOLDERS = `
  SELECT l.pid, a.application_name AS app
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
   WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = $1::oid
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`;

describe.skipIf(!available)("two instances through PgBouncer in transaction mode", () => {
  let db: TestDatabase;
  let bouncer: Pgbouncer;
  let a: App;
  let b: App;
  beforeAll(async () => {
    db = await createTestDatabase();
    // Fewer server connections than the instances' pools hold between them:
    // their transactions take turns on PgBouncer's.
    bouncer = await startPgbouncer(db.url, { poolSize: 4 });
    const config = {
      data: {
        database: { source: bouncer.url(db.name), direct_source: db.url, migrate: "up" },
      },
      // Only news from the other instance changes the key in use: no cache
      // lifetime or maintenance pass runs out during the test.
      kms: { root_key: testRootKey, cache_ttl: "1h", maintenance_interval: "1h" },
    };
    // Started together, as N instances of a deploy are.
    [a, b] = await Promise.all([
      startTestApp(bouncer.url(db.name), config),
      startTestApp(bouncer.url(db.name), config),
    ]);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await bouncer?.stop();
    await db?.drop();
  });

  it("a rotation on one is heard by the other (LISTEN on the direct connection): it seals with the new key", async () => {
    const seal = (app: App) =>
      clients(app).kms.encryptField({ fieldName: "f", plaintext: enc("x"), context: enc("") });
    // b holds the active key in its cache, which outlives the test.
    const before = (await seal(b)).keyVersion;
    const rotated = (await clients(a).kms.rotateDataKey({ reason: "pgbouncer" })).key!.version;
    expect(rotated).toBeGreaterThan(before);
    const after = await until(
      () => seal(b).then((s) => s.keyVersion),
      (v) => v === rotated,
    );
    expect(after).toBe(rotated);
  }, 90_000);

  it("re-encryption runs once across both: one job, one session holding its lock, on a direct connection, released at the end", async () => {
    const onA = clients(a);
    const onB = clients(b);
    const ids: bigint[] = [];
    for (let i = 0; i < 6; i++) {
      const { user } = await onA.users.createUser({
        username: `pgb_${i}`,
        password: "passw0rd-long",
        email: `pgb${i}@example.com`,
        name: `PgBouncer ${i}`,
      });
      ids.push(user!.id);
    }
    const target = (await onA.kms.rotateDataKey({ reason: "the target" })).key!.version;

    const watcher = new pg.Client({ connectionString: db.url });
    await watcher.connect();
    try {
      const lock = String(ADVISORY_LOCKS.reencryptionJob);
      const holders = () =>
        watcher.query<{ pid: number; app: string }>(HOLDERS, [lock]).then((r) => r.rows);
      // One row per batch, half a second apart: several of the other
      // instance's polls (every 2 s) find the job running.
      const asked = await Promise.allSettled([
        onA.kms.startReencryption({ batchSize: 1, pause: { seconds: 0n, nanos: 500_000_000 } }),
        onB.kms.startReencryption({ batchSize: 1, pause: { seconds: 0n, nanos: 500_000_000 } }),
      ]);
      expect(asked.filter((r) => r.status === "fulfilled")).toHaveLength(1);

      const seen: { pid: number; app: string }[][] = [];
      const status = await until(
        async () => {
          seen.push(await holders());
          return (await onB.kms.getReencryptionStatus({})).status!;
        },
        (s) => s.state === ReencryptionState.FINISHED,
      );
      expect(status.rowsDone).toBe(BigInt(ids.length));
      expect(status.rowsFailed).toBe(0n);
      // Never two holders; one session throughout, and a direct one: through
      // the pooler the lock would sit on a server connection every client
      // of PgBouncer may be handed.
      expect(Math.max(...seen.map((h) => h.length))).toBe(1);
      const sessions = new Set(seen.flat().map((h) => h.pid));
      expect(sessions.size).toBe(1);
      expect(new Set(seen.flat().map((h) => h.app))).toEqual(
        new Set(["kratos-boilerplate-ts direct"]),
      );
      // Released when the job ended, not left on a connection.
      await until(holders, (h) => h.length === 0);
    } finally {
      await watcher.end();
    }

    const events = await query<{ kind: string; n: string }>(
      db.url,
      `SELECT kind, count(*) AS n FROM kms_audit_events
        WHERE kind LIKE 'reencryption_%' GROUP BY kind ORDER BY kind`,
    );
    expect(events).toEqual([
      { kind: "reencryption_finished", n: "1" },
      { kind: "reencryption_started", n: "1" },
    ]);
    const left = await query<{ n: string }>(
      db.url,
      "SELECT count(*) AS n FROM users WHERE NOT (key_versions <@ ARRAY[$1]::int[])",
      [target],
    );
    expect(left[0]!.n).toBe("0");
    for (const [i, id] of ids.entries()) {
      const { user } = await onB.users.getUser({ id });
      expect(user?.email).toBe(`pgb${i}@example.com`);
    }
  }, 120_000);

  it("migrate up from two hosts at once, the pooler as source and the direct URL for the lock, applies each migration once", async () => {
    const fresh = await createTestDatabase();
    const dir = mkdtempSync(join(tmpdir(), "kbts-pgbouncer-"));
    try {
      const conf = join(dir, "migrate.yaml");
      writeFileSync(
        conf,
        `data: { database: { source: "${bouncer.url(fresh.name)}", direct_source: "${fresh.url}" } }
kms: { root_key: "${testRootKey}" }
`,
      );
      const env = { DATABASE_URL: undefined, DATABASE_DIRECT_URL: undefined };
      // DATABASE_URL beside the file's direct_source is refused, not guessed at.
      const ambiguous = await runMigrate(["up", "-conf", conf], {
        env: { ...env, DATABASE_URL: bouncer.url(fresh.name) },
      });
      expect(ambiguous.code, ambiguous.output).toBe(2);
      expect(ambiguous.output).toContain("set DATABASE_DIRECT_URL too");
      const runs = await Promise.all([
        runMigrate(["up", "-conf", conf], { env }),
        runMigrate(["up", "-conf", conf], { env }),
      ]);
      for (const run of runs) expect(run.code, run.output).toBe(0);
      const applied = await query<{ name: string; n: string }>(
        fresh.url,
        "SELECT name, count(*) AS n FROM pgmigrations GROUP BY name ORDER BY name",
      );
      expect(applied).toEqual(projectNames.map((name) => ({ name, n: "1" })));
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await fresh.drop();
    }
  }, 120_000);

  it("what the direct URL prevents: through the pooler a session lock is not exclusive, two clients both take it", async () => {
    // One server connection: whoever comes next is handed the session that
    // took the lock, and takes it again.
    const solo = await startPgbouncer(db.url, { poolSize: 1 });
    const lock = 0x74657374;
    const pools = (url: string) => [
      new pg.Pool({ connectionString: url, max: 1 }),
      new pg.Pool({ connectionString: url, max: 1 }),
    ];
    const nested = async ([first, second]: pg.Pool[]) => {
      let inner: boolean | undefined;
      const outer = await exclusively(first!, lock, async () => {
        inner = await exclusively(second!, lock, async () => undefined);
      });
      return { outer, inner };
    };
    const pooled = pools(solo.url(db.name));
    const direct = pools(db.url);
    try {
      expect(await nested(pooled)).toEqual({ outer: true, inner: true });
      expect(await nested(direct)).toEqual({ outer: true, inner: false });
    } finally {
      for (const p of [...pooled, ...direct]) await p.end();
      await solo.stop();
    }
  });
});
