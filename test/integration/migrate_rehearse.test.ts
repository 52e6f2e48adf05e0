import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import {
  abandon,
  connect,
  DatabaseStalledError,
  disconnect,
} from "../../internal/migrate/connect.js";
import { migratorOptions } from "../../internal/migrate/options.js";
import { RehearsalUnavailableError, withCopy } from "../../internal/migrate/rehearse/copy.js";
import type { Logger } from "../../internal/pkg/log/logger.js";
import { catalogSnapshot, query } from "../helpers/catalog.js";
import type { TestDatabase } from "../helpers/db.js";
import { migrationFixtures } from "../helpers/migrations.js";
import { spawnMigrate } from "../helpers/process.js";

// `up --rehearse` / `plan`: the pending migrations run on a copy (or on the
// target, rolled back); the report names each statement's locks and
// rewrites, and the target is the same before and after, rows included.

const { freshDb, folder, migrate } = migrationFixtures();

const WIDEN = "000091_widen.up.sql";
const INDEX = "000092_index.up.sql";
const pending = {
  [WIDEN]: "ALTER TABLE users ALTER COLUMN index_epoch TYPE bigint;\n",
  [INDEX]:
    "-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY idx_users_created ON users (created_at);\n",
};

interface Traced {
  name: string;
  failed: boolean;
  statements: {
    line: number;
    sql: string;
    locks: { mode: string; relation: string; source: string }[];
    rewrote: string[];
    error?: string;
  }[];
}

/** The target as a reader sees it: its catalog, its rows, its files on disk. */
async function fingerprint(db: TestDatabase) {
  const [data] = await query<{ sum: string; files: string }>(
    db.url,
    `SELECT md5(string_agg(u::text, ',' ORDER BY u.id)) AS sum,
            (SELECT string_agg(relname || '=' || relfilenode, ',' ORDER BY relname) FROM pg_class
              WHERE relnamespace = 'public'::regnamespace) AS files FROM users u`,
  );
  return {
    catalog: await catalogSnapshot(db.url, { includeMigrationTable: true }),
    migrations: await query(db.url, "SELECT name, checksum FROM pgmigrations ORDER BY id"),
    ...data,
  };
}

/** Copies of rehearsals of `db` still on the server (other files rehearse beside this one). */
async function leftovers(db: TestDatabase): Promise<string[]> {
  const rows = await query<{ datname: string }>(
    db.url,
    `SELECT datname FROM pg_database
      WHERE datname LIKE 'migrate_rehearsal_%'
        AND shobj_description(oid, 'pg_database') = 'migrate rehearsal of ' || current_database()`,
  );
  return rows.map((r) => r.datname);
}

describe("rehearsal on a populated database", () => {
  let db: TestDatabase;
  let dir: string;
  let before: Awaited<ReturnType<typeof fingerprint>>;
  beforeAll(async () => {
    db = await freshDb();
    expect((await migrate(db, ["up"])).code).toBe(0);
    await query(
      db.url,
      "INSERT INTO users (username, password_hash, index_epoch) SELECT 'u' || g, 'p', g FROM generate_series(1, 2000) g",
    );
    dir = folder(pending);
    before = await fingerprint(db);
  });

  it("up --rehearse --json: ACCESS EXCLUSIVE and a rewrite for a type change, only SHARE UPDATE EXCLUSIVE for a concurrent build", async () => {
    const run = await migrate(db, ["up", "--rehearse", "--json", "--dir", dir]);
    expect(run.code, run.output).toBe(0);
    const r = JSON.parse(run.stdout) as { mode: string; schemaFrom: string; migrations: Traced[] };
    // pg_dump only when it is at least as new as the server (the embedded
    // PostgreSQL may be newer than the system's pg_dump): else the replay.
    const dumpMajor = Number(
      /(\d+)/.exec(spawnSync("pg_dump", ["--version"], { encoding: "utf8" }).stdout ?? "")?.[1] ??
        0,
    );
    const [{ v }] = (await query(db.url, "SELECT current_setting('server_version_num') AS v")) as [
      { v: string },
    ];
    const schemaFrom = dumpMajor >= Math.floor(Number(v) / 10000) ? "dump" : "replay";
    expect(r).toMatchObject({ mode: "copy", schemaFrom });
    const [widen, index] = r.migrations;
    const alter = widen!.statements[0]!;
    expect(alter.locks).toContainEqual({
      mode: "ACCESS EXCLUSIVE",
      relation: "public.users",
      source: "held",
    });
    expect(alter.rewrote).toEqual(["public.users"]);
    const build = index!.statements[0]!;
    expect(build.line).toBe(2);
    expect(build.locks.length).toBeGreaterThan(0);
    expect(build.locks.map((l) => [l.mode, l.relation])).toEqual(
      build.locks.map(() => ["SHARE UPDATE EXCLUSIVE", "public.users"]),
    );
    expect(build.rewrote).toEqual([]);
    expect(await fingerprint(db)).toEqual(before);
    expect(await leftovers(db)).toEqual([]);
  });

  it("plan prints the same as text, saying where it ran and that it applied nothing", async () => {
    const run = await migrate(db, ["plan", "--schema-from=replay", "--dir", dir]);
    expect(run.code, run.output).toBe(0);
    expect(run.stdout).toMatch(
      /on a copy \(database migrate_rehearsal_\w+, schema from the applied files replayed/,
    );
    expect(run.stdout).toContain("lock ACCESS EXCLUSIVE on public.users (held)");
    expect(run.stdout).toContain("rewrote public.users");
    expect(run.stdout).toContain("the target was not changed");
    expect(await fingerprint(db)).toEqual(before);
  });

  it("--rehearse=target runs transactional files on the target, rolled back", async () => {
    const only = folder({ [WIDEN]: pending[WIDEN] });
    const run = await migrate(db, ["up", "--rehearse=target", "--dir", only]);
    expect(run.code, run.output).toBe(0);
    expect(run.stdout).toContain("on the target, in one transaction rolled back");
    expect(run.stdout).toContain("rewrote public.users");
    expect(await fingerprint(db)).toEqual(before);
    // A concurrent build cannot run in BEGIN … ROLLBACK: refused before anything runs.
    const refused = await migrate(db, ["up", "--rehearse=target", "--dir", dir]);
    expect(refused.code, refused.output).toBe(2);
    expect(refused.output).toContain(`${INDEX} cannot run in a transaction`);
  });

  it("a migration failing in rehearsal exits 1, names the line, and leaves no database behind", async () => {
    const bad = folder({
      [WIDEN]:
        "ALTER TABLE users ADD COLUMN extra int;\nALTER TABLE users ALTER COLUMN nope TYPE bigint;\n",
    });
    const run = await migrate(db, ["up", "--rehearse", "--json", "--dir", bad]);
    expect(run.code, run.output).toBe(1);
    const [m] = (JSON.parse(run.stdout) as { migrations: Traced[] }).migrations;
    expect(m).toMatchObject({ name: "000091_widen", failed: true });
    expect(m!.statements[1]).toMatchObject({ line: 2 });
    expect(m!.statements[1]!.error).toContain('"nope"');
    expect(await fingerprint(db)).toEqual(before);
    expect(await leftovers(db)).toEqual([]);
  });

  it("SIGINT mid-statement cancels it, drops the copy and exits 130", async () => {
    const slow = folder({ [WIDEN]: "SELECT pg_sleep(60);\n" });
    const proc = spawnMigrate(["up", "--rehearse", "--dir", slow], {
      env: { DATABASE_URL: db.url },
    });
    const sleeping = async () =>
      (
        await query(
          db.url,
          "SELECT 1 FROM pg_stat_activity WHERE datname LIKE 'migrate_rehearsal_%' AND query LIKE 'SELECT pg_sleep%'",
        )
      ).length > 0;
    const deadline = Date.now() + 30_000;
    while (!(await sleeping()) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    // The copy is there, marked as this database's: what leftovers() looks for.
    expect(await leftovers(db)).toHaveLength(1);
    proc.child.kill("SIGINT");
    expect(await proc.exited, proc.output()).toBe(130);
    // A stop, not a failure of the file.
    expect(proc.output()).toMatch(/^STOPPED 000091_widen/m);
    expect(proc.output()).toMatch(/error: cancelled by SIGINT$/m);
    expect(proc.output()).toMatch(
      /^interrupted by SIGINT: 0 migration\(s\) rehearsed whole, the rest not; the target was not changed$/m,
    );
    expect(proc.output()).not.toMatch(/failed in rehearsal|canceling statement/);
    expect(await leftovers(db)).toEqual([]);
    expect(await fingerprint(db)).toEqual(before);
  });

  it("SIGINT while the copy is filled by replaying the applied files: stops at once, drops it, exits 130", async () => {
    const target = await freshDb();
    // Applied on the target; replayed into the copy, it waits there (only there).
    const sleeper = {
      "000090_sleeper.up.sql":
        "DO $$ BEGIN IF current_database() LIKE 'migrate_rehearsal_%' THEN PERFORM pg_sleep(598); END IF; END $$;\n",
    };
    expect((await migrate(target, ["up", "--dir", folder(sleeper)])).code).toBe(0);
    const proc = spawnMigrate(
      ["up", "--rehearse", "--schema-from", "replay", "--dir", folder({ ...sleeper, ...pending })],
      { env: { DATABASE_URL: target.url } },
    );
    try {
      await expect
        .poll(
          () =>
            query(
              target.url,
              `SELECT 1 FROM pg_stat_activity WHERE datname LIKE 'migrate_rehearsal_%'
                AND state = 'active' AND strpos(query, 'pg_sleep(598)') > 0`,
            ),
          { timeout: 60_000, interval: 100 },
        )
        .toHaveLength(1);
      proc.child.kill("SIGINT");
      expect(await proc.exited, proc.output()).toBe(130);
    } finally {
      proc.child.kill("SIGKILL");
    }
    expect(proc.output()).toContain(
      "interrupted before anything was rehearsed; the target was not changed",
    );
    expect(await leftovers(target)).toEqual([]);
  }, 120_000);

  it("bad --rehearse values exit 2", async () => {
    const run = await migrate(db, ["up", "--rehearse=elsewhere", "--dir", dir]);
    expect(run.code, run.output).toBe(2);
    expect(run.output).toContain('--rehearse "elsewhere": expected copy or target');
  });
});

describe("when no copy can be made", () => {
  it("a role without CREATEDB exits 2 saying so", async () => {
    const db = await freshDb();
    expect((await migrate(db, ["up"])).code).toBe(0);
    const role = `r_${db.name}`;
    await query(
      db.url,
      `CREATE ROLE ${role} LOGIN NOCREATEDB PASSWORD 'rehearse-pw'; GRANT ALL ON SCHEMA public TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}`,
    );
    try {
      const url = new URL(db.url);
      url.username = role;
      url.password = "rehearse-pw";
      const run = await migrate(db, ["up", "--rehearse", "--dir", folder(pending)], {
        env: { DATABASE_URL: url.toString() },
      });
      expect(run.code, run.output).toBe(2);
      expect(run.output).toContain("cannot create the rehearsal database");
      expect(run.output).toContain("CREATEDB");
    } finally {
      await query(db.url, `DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });
});

describe("rehearsal databases are not left behind", () => {
  const exists = async (db: TestDatabase, name: string) =>
    (await query(db.url, "SELECT 1 FROM pg_database WHERE datname = $1", [name])).length > 0;
  const pidOf = (c: pg.Client) => (c as unknown as { processID: number }).processID;
  const silent = { debug() {}, info() {}, warn() {}, error() {} } as unknown as Logger;

  it("When the target's connection dies during the rehearsal, Then the copy is dropped over a fresh one", async () => {
    const db = await freshDb();
    const target = await connect(db.url, 10_000);
    let name = "";
    try {
      await withCopy(
        migratorOptions(undefined, db.url, silent),
        target,
        [],
        [],
        "replay",
        async (copy) => {
          name = copy.name;
          await query(db.url, "SELECT pg_terminate_backend($1)", [pidOf(target)]);
        },
      );
    } finally {
      await disconnect(target, 1000);
    }
    expect(name).toMatch(/^migrate_rehearsal_[0-9a-f]{12}$/);
    expect(await exists(db, name)).toBe(false);
  });

  it("When the reply to CREATE DATABASE is lost, Then the copy it made is dropped and the rehearsal cannot run", async () => {
    const db = await freshDb();
    const target = await connect(db.url, 10_000);
    const real = target.query.bind(target) as (text: string) => Promise<unknown>;
    let created = "";
    // The statement runs; its reply never comes back (a stalled peer).
    target.query = (async (text: string, ...rest: unknown[]) => {
      if (typeof text !== "string" || !text.startsWith("CREATE DATABASE"))
        return (real as (...a: unknown[]) => Promise<unknown>)(text, ...rest);
      await real(text);
      created = /^CREATE DATABASE (\w+)/.exec(text)![1]!;
      abandon(target);
      throw new DatabaseStalledError("stopped answering");
    }) as unknown as typeof target.query;
    try {
      const run = withCopy(
        migratorOptions(undefined, db.url, silent),
        target,
        [],
        [],
        "replay",
        () => Promise.resolve("not reached"),
      );
      await expect(run).rejects.toThrow(RehearsalUnavailableError);
    } finally {
      await disconnect(target, 1000);
    }
    expect(created).toMatch(/^migrate_rehearsal_/);
    expect(await exists(db, created)).toBe(false);
  });

  it("When earlier runs left copies, Then a rehearsal drops those nobody uses, logging each", async () => {
    const db = await freshDb();
    expect((await migrate(db, ["up"])).code).toBe(0);
    const [stale, busy, owned, other] = [1, 2, 3, 4].map(
      () => `migrate_rehearsal_${randomBytes(6).toString("hex")}`,
    ) as [string, string, string, string];
    // Left by rehearsals of this database (another database's are never swept).
    const target = new URL(db.url).pathname.slice(1);
    for (const n of [stale, busy, owned, other]) await query(db.url, `CREATE DATABASE ${n}`);
    for (const n of [stale, busy, owned])
      await query(db.url, `COMMENT ON DATABASE ${n} IS 'migrate rehearsal of ${target}'`);
    await query(db.url, `COMMENT ON DATABASE ${other} IS 'migrate rehearsal of elsewhere'`);
    const url = new URL(db.url);
    url.pathname = `/${busy}`;
    // A session connected to one; a live rehearsal (on another database) owning another.
    const connected = new pg.Client({ connectionString: url.toString() });
    const owner = new pg.Client({ connectionString: db.url, application_name: `migrate ${owned}` });
    await connected.connect();
    await owner.connect();
    try {
      const run = await migrate(db, ["plan", "--schema-from=replay", "--dir", folder(pending)]);
      expect(run.code, run.output).toBe(0);
      expect(run.output).toMatch(
        new RegExp(
          `"database":"${stale}".*"msg":"dropped a rehearsal database left by an earlier run"`,
        ),
      );
      expect(await exists(db, stale)).toBe(false);
      expect(await exists(db, busy)).toBe(true);
      expect(await exists(db, owned)).toBe(true);
      expect(await exists(db, other)).toBe(true);
    } finally {
      await connected.end();
      await owner.end();
      for (const n of [stale, busy, owned, other])
        await query(db.url, `DROP DATABASE IF EXISTS ${n} WITH (FORCE)`);
    }
  });
});
