import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  describeInstance,
  ensureInstancesTable,
  readLiveInstances,
  type Instance,
} from "../../internal/migrate/instances.js";
import { readMigrations } from "../../internal/migrate/source.js";
import { testRootKey } from "../helpers/app.js";
import { createTestDatabase, withClient, type TestDatabase } from "../helpers/db.js";
import { databaseProxy } from "../helpers/proxy.js";
import { until } from "../helpers/poll.js";
import { spawnServer, type ServerProcess } from "../helpers/process.js";

// Each running server's row in public.migrate_instances: what the contract
// phase reads to wait for the last instance of the previous release.

const newest = readMigrations("migrations").migrations.at(-1)!.version;
const release = (JSON.parse(readFileSync("package.json", "utf8")) as { version: string }).version;
const dir = mkdtempSync(join(tmpdir(), "instances-"));
let db: TestDatabase;
const servers: ServerProcess[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  for (const s of servers) if (s.child.exitCode === null) s.child.kill("SIGKILL");
  await Promise.all(servers.map((s) => s.exited));
  await db?.drop();
});

/** A server on `url` beating every second; resolves once it listens. */
async function start(url: string, name: string, migrate = "up") {
  const conf = join(dir, `${name}.yaml`);
  writeFileSync(
    conf,
    `server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" } }
data: { database: { source: "${url}", migrate: ${migrate}, migration: { heartbeat_interval: 1s } } }
kms: { root_key: "${testRootKey}" }
auth: { enabled: false }
log: { level: info, format: json }
`,
  );
  const server = spawnServer(["-conf", conf], {
    env: { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined },
  });
  servers.push(server);
  const ports = JSON.parse(await server.waitFor(/"msg":"listening/)) as { http: number };
  return { server, http: ports.http };
}

const rows = (url: string) =>
  withClient(url, async (c) => {
    const { rows } = await c.query<{
      pid: number;
      host: string;
      release: string;
      schema_version: string;
      last_seen: Date;
      expires_at: Date;
      started_at: Date;
    }>(
      "SELECT pid, host, release, schema_version::text, started_at, last_seen, expires_at FROM migrate_instances ORDER BY started_at",
    );
    return rows;
  });
const live = (url: string) => withClient(url, (c) => readLiveInstances(c));
const pids = (list: { pid: number }[] | undefined) => (list ?? []).map((r) => r.pid);

describe("the heartbeat", () => {
  it("records a started server (pid, host, release, newest migration), advances last_seen, and a SIGTERM removes the row", async () => {
    const { server } = await start(db.url, "first");
    const pid = server.child.pid!;
    // Registered before it listens: the row is there already.
    const [row] = await rows(db.url);
    expect(row).toMatchObject({ pid, host: hostname(), release });
    expect(BigInt(row!.schema_version)).toBe(newest);
    expect(row!.expires_at.getTime()).toBeGreaterThan(row!.last_seen.getTime());

    const seen = row!.last_seen.getTime();
    const later = await until(
      () => rows(db.url),
      (r) => r[0]!.last_seen.getTime() > seen,
    );
    expect(later).toHaveLength(1);
    expect(later[0]!.started_at).toEqual(row!.started_at);

    // The query docs/operations.md shows an operator.
    const section = readFileSync("docs/operations.md", "utf8").split(
      "### Instances and heartbeats",
    )[1]!;
    const shown = /^```sql\n([\s\S]*?)^```$/m.exec(section)![1]!;
    expect(await withClient(db.url, (c) => c.query(shown).then((r) => r.rows))).toMatchObject([
      { host: hostname(), pid, release, schema_version: String(newest) },
    ]);

    const [instance] = (await live(db.url))!;
    expect(instance).toMatchObject({ pid, host: hostname(), schemaVersion: newest });
    expect(describeInstance(instance!)).toMatch(
      new RegExp(
        `^\\S+ pid ${pid} \\(release ${release.replaceAll(".", "\\.")}, schema ${String(newest).padStart(6, "0")}, last seen \\d{4}-.*Z\\)$`,
      ),
    );

    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(await rows(db.url)).toEqual([]);
  });

  it("a SIGKILLed server's row stays until it expires; readLiveInstances then leaves it out", async () => {
    const { server } = await start(db.url, "killed");
    const pid = server.child.pid!;
    server.child.kill("SIGKILL");
    await server.exited;
    expect(pids(await rows(db.url))).toEqual([pid]);
    expect(pids(await live(db.url))).toEqual([pid]);
    // Its expiry, without waiting for it.
    await withClient(db.url, (c) =>
      c.query("UPDATE migrate_instances SET expires_at = now() - interval '1 second'"),
    );
    expect(await live(db.url)).toEqual([]);
    // Expired is not deleted: only rows expired an hour ago go.
    expect(pids(await rows(db.url))).toEqual([pid]);
    await withClient(db.url, (c) =>
      c.query("UPDATE migrate_instances SET expires_at = now() - interval '2 hours'"),
    );
    const { server: next } = await start(db.url, "pruner");
    expect(pids(await rows(db.url))).toEqual([next.child.pid]);
    next.child.kill("SIGTERM");
    expect(await next.exited).toBe(0);
  });
});

describe("the table beside the schema", () => {
  it("is bookkeeping: a server starting with migrate: verify does not count it as a difference", async () => {
    const { server } = await start(db.url, "verifying", "verify");
    expect(pids(await rows(db.url))).toContain(server.child.pid);
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
  });
});

describe("readLiveInstances", () => {
  it("is undefined without the table, and for a role that may not read it", async () => {
    const other = await createTestDatabase();
    const role = `instances_reader_${randomBytes(4).toString("hex")}`;
    try {
      expect(await live(other.url)).toBeUndefined();
      // Twice, and concurrently: idempotent, and no catalog race.
      await Promise.all([1, 2, 3].map(() => withClient(other.url, (c) => ensureInstancesTable(c))));
      await withClient(other.url, (c) => ensureInstancesTable(c));
      expect(await live(other.url)).toEqual([]);

      // A password: the embedded PostgreSQL asks for one (SCRAM).
      await withClient(other.url, (c) =>
        c.query(`CREATE ROLE ${role} LOGIN PASSWORD 'instances-pass-1'`),
      );
      const url = new URL(other.url);
      url.username = role;
      url.password = "instances-pass-1";
      expect(await live(url.toString())).toBeUndefined();
    } finally {
      await other.drop();
      await withClient(db.url, (c) => c.query(`DROP ROLE IF EXISTS ${role}`));
    }
  });

  it("orders by schema first and describes a hostile host without its control characters", async () => {
    const other = await createTestDatabase();
    try {
      await withClient(other.url, async (c) => {
        await ensureInstancesTable(c);
        await c.query(
          `INSERT INTO migrate_instances VALUES
             (gen_random_uuid(), 'new', 2, '2.0.0', 19, now(), now(), now() + interval '1 minute'),
             (gen_random_uuid(), E'old\\x1b[31m\\n\\u202e', 1, '1.0.0', 18, now(), now(), now() + interval '1 minute')`,
        );
      });
      const list = (await live(other.url)) as Instance[];
      expect(list.map((i) => [i.host, i.schemaVersion])).toEqual([
        ["old\x1b[31m\n\u202e", 18n],
        ["new", 19n],
      ]);
      expect(describeInstance(list[0]!)).toMatch(
        /^old\\u\{1b\}\[31m\\u\{a\}\\u\{202e\} pid 1 \(release 1\.0\.0, schema 000018, /,
      );
    } finally {
      await other.drop();
    }
  });
});

describe("a role that may not write the table", () => {
  it("keeps the server serving, with one warning, and beats once it may", async () => {
    const other = await createTestDatabase();
    const role = `instances_server_${randomBytes(4).toString("hex")}`;
    const password = "instances-pass-2";
    try {
      // The server's role owns the schema it migrates, not the table.
      await withClient(other.url, async (c) => {
        await c.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
        await c.query(`GRANT ALL ON SCHEMA public TO ${role}`);
        await ensureInstancesTable(c);
      });
      const url = new URL(other.url);
      url.username = role;
      url.password = password;
      const { server, http } = await start(url.toString(), "denied");
      const warning = await server.waitFor(/heartbeat: could not record/);
      expect(JSON.parse(warning)).toMatchObject({
        level: "warn",
        err: { message: "permission denied for table migrate_instances" },
      });
      expect(warning).not.toContain(password);

      // Several beats later: still serving (a call that writes), still one warning.
      await new Promise((r) => setTimeout(r, 3500));
      const created = await fetch(`http://127.0.0.1:${http}/user.v1.UserService/CreateUser`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          username: "beating",
          password: "passw0rd-long",
          email: "beat@example.com",
        }),
      });
      expect(created.status).toBe(200);
      expect(server.output().match(/heartbeat: could not record/g)).toHaveLength(1);

      await withClient(other.url, (c) =>
        c.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON migrate_instances TO ${role}`),
      );
      await server.waitFor(/heartbeat: recorded in migrate_instances again/);
      expect(pids(await live(other.url))).toEqual([server.child.pid]);
      server.child.kill("SIGTERM");
      expect(await server.exited).toBe(0);
      expect(await rows(other.url)).toEqual([]);
    } finally {
      await other.drop();
      await withClient(db.url, (c) => c.query(`DROP ROLE IF EXISTS ${role}`));
    }
  });
});

describe("a role that may not create the table", () => {
  it("keeps the server serving, with one warning, and beats once the table is there", async () => {
    const other = await createTestDatabase();
    const role = `instances_user_${randomBytes(4).toString("hex")}`;
    const password = "instances-pass-3";
    try {
      // Migrated by the owner; the server's role may use the tables, not create any.
      const { server: owner } = await start(other.url, "owner");
      owner.child.kill("SIGTERM");
      expect(await owner.exited).toBe(0);
      await withClient(other.url, (c) =>
        c.query(
          `DROP TABLE migrate_instances;
           CREATE ROLE ${role} LOGIN PASSWORD '${password}';
           GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role};
           GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO ${role}`,
        ),
      );
      const url = new URL(other.url);
      url.username = role;
      url.password = password;
      const { server, http } = await start(url.toString(), "user", "check");
      const warning = await server.waitFor(/heartbeat: could not record/);
      expect(JSON.parse(warning).err.message).toBe("permission denied for schema public");
      const ready = await fetch(`http://127.0.0.1:${http}/readyz`);
      expect(ready.status).toBe(200);

      await withClient(other.url, async (c) => {
        await ensureInstancesTable(c);
        await c.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON migrate_instances TO ${role}`);
      });
      await server.waitFor(/heartbeat: recorded in migrate_instances again/);
      expect(server.output().match(/heartbeat: could not record/g)).toHaveLength(1);
      expect(pids(await live(other.url))).toEqual([server.child.pid]);
      server.child.kill("SIGTERM");
      expect(await server.exited).toBe(0);
    } finally {
      await other.drop();
      await withClient(db.url, (c) => c.query(`DROP ROLE IF EXISTS ${role}`));
    }
  });
});

describe("a database that stalls or goes away", () => {
  it("never stops the service: a beat is bounded, one warning per run of failures, and it beats again", async () => {
    let stallBeats = false;
    const proxy = await databaseProxy(new URL(db.url), {
      tap: (chunk) =>
        stallBeats && chunk.includes("INSERT INTO public.migrate_instances") ? "stall" : "forward",
    });
    try {
      const { server, http } = await start(proxy.url, "stalled");
      const pid = server.child.pid!;
      const createUser = (n: number) =>
        fetch(`http://127.0.0.1:${http}/user.v1.UserService/CreateUser`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            username: `stalled_${n}`,
            password: "passw0rd-long",
            email: `stalled${n}@example.com`,
          }),
        });

      // A beat whose reply never comes: given up (statement bound plus the
      // connect timeout), the connection dropped; calls are served meanwhile.
      stallBeats = true;
      const warning = await server.waitFor(/heartbeat: could not record/);
      expect(JSON.parse(warning).err.message).toMatch(/stopped answering/);
      expect((await createUser(1)).status).toBe(200);
      stallBeats = false;
      await server.waitFor(/heartbeat: recorded in migrate_instances again/);
      expect(pids(await live(db.url))).toContain(pid);

      // The database gone for a while: the process stays, and beats once it is back.
      proxy.down();
      await until(
        async () => server.output().match(/heartbeat: could not record/g)?.length ?? 0,
        (n) => n === 2,
      );
      const seen = (await live(db.url))!.find((i) => i.pid === pid)!.lastSeen.getTime();
      proxy.up();
      await until(
        async () =>
          server.output().match(/heartbeat: recorded in migrate_instances again/g)!.length,
        (n) => n === 2,
      );
      const now = (await live(db.url))!.find((i) => i.pid === pid)!;
      expect(now.lastSeen.getTime()).toBeGreaterThan(seen);
      expect(server.child.exitCode).toBeNull();
      expect((await createUser(2)).status).toBe(200);
      server.child.kill("SIGTERM");
      expect(await server.exited).toBe(0);
      expect(pids(await live(db.url))).not.toContain(pid);
    } finally {
      await proxy.close();
    }
  });
});
