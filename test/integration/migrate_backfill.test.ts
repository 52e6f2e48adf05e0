import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { query } from "../helpers/catalog.js";
import { migrationFixtures } from "../helpers/migrations.js";
import { until } from "../helpers/poll.js";
import { spawnMigrate } from "../helpers/process.js";

// A `-- migrate:backfill` UPDATE runs in ranges of the primary key, each its
// own transaction with the cursor, and the migration is recorded only when
// no row is left to fill; a run killed halfway goes on from its cursor.
// `fills` counts how often the backfill touched each row: once, always.

const { freshDb, folder, migrate } = migrationFixtures();

const table = (rows: number) => ({
  "1_items.up.sql": `CREATE TABLE items (id bigserial PRIMARY KEY, a text NOT NULL, fills int NOT NULL DEFAULT 0);
INSERT INTO items (a) SELECT 'item-' || g FROM generate_series(1, ${rows}) g;\n`,
  "1_items.down.sql": "DROP TABLE items;\n",
});

const expand = (options: string, set = "b = upper(a), fills = fills + 1") => ({
  "2_b_expand.up.sql": `-- migrate:phase expand
ALTER TABLE items ADD COLUMN b text;
-- migrate:backfill ${options}
UPDATE items SET ${set} WHERE b IS NULL;\n`,
  "2_b_expand.down.sql": "ALTER TABLE items DROP COLUMN b;\n",
});

const counts = async (url: string) =>
  (
    await query<{ filled: number; twice: number; total: number }>(
      url,
      `SELECT count(b)::int AS filled, count(*) FILTER (WHERE fills > 1)::int AS twice, count(*)::int AS total FROM items`,
    )
  )[0]!;
const recorded = async (url: string) =>
  (await query(url, "SELECT name FROM pgmigrations ORDER BY id")).map((r) => r.name);
const progress = async (url: string) =>
  query<{ stage: number; cursor: string | null; rows: string }>(
    url,
    "SELECT stage, cursor, rows::text AS rows FROM migrate_backfills",
  );

/** Failures recorded and not resolved: none, also when nothing ever made the table. */
const unresolvedFailures = async (url: string) =>
  (
    await query<{ n: number }>(
      url,
      "SELECT count(*)::int AS n FROM migrate_failures WHERE resolved_at IS NULL",
    ).catch((err: { code?: string }) => {
      // No table: nothing was ever recorded.
      if (err.code === "42P01") return [{ n: 0 }];
      throw err;
    })
  )[0]!.n;

/** `migrate up` in its own process, once its backfill has filled at least `rows` rows. */
async function halfway(url: string, dir: string, rows = 1) {
  const child = spawnMigrate(["up", "--dir", dir], { env: { DATABASE_URL: url } });
  await until(
    () => progress(url).catch(() => []),
    (p) => p.length === 1 && Number(p[0]!.rows) >= rows,
  );
  return child;
}

describe("a backfill", () => {
  it("fills every row once, range by range, with progress events, then records the migration", async () => {
    const db = await freshDb();
    const dir = folder({ ...table(5000), ...expand("batch=500") }, { project: false });
    const events = join(dir, "events.jsonl");
    const r = await migrate(db, ["up", "--dir", dir, "--events", events, "--json"]);
    expect(r.code, r.output).toBe(0);
    expect(await counts(db.url)).toEqual({ filled: 5000, twice: 0, total: 5000 });
    expect(await recorded(db.url)).toEqual(["1_items", "2_b_expand"]);
    expect(await progress(db.url)).toEqual([]);
    const report = JSON.parse(r.stdout) as { done: { backfills?: unknown[] }[] };
    expect(report.done[1]!.backfills).toEqual([
      expect.objectContaining({ table: '"items"', rows: 5000, batches: 10, resumed: false }),
    ]);
    const lines = readFileSync(events, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const first = lines.find((e) => e.event === "backfill_progress");
    expect(first).toMatchObject({ name: "2_b_expand", table: '"items"', rows: 0, remaining: 5000 });
    expect(lines.filter((e) => e.event === "backfill_progress").at(-1)).toMatchObject({
      rows: 5000,
      remaining: 0,
      batches: 10,
    });
    expect(lines.find((e) => e.event === "backfill_finished")).toMatchObject({
      rows: 5000,
      batches: 10,
    });
    const text = await migrate(db, ["status", "--dir", dir]);
    expect(text.stdout).not.toMatch(/backfilling/);
  });

  it("killed a third of the way, resumes from its cursor and fills each row once", async () => {
    const db = await freshDb();
    const dir = folder({ ...table(30000), ...expand("batch=500 pause=30ms") }, { project: false });
    expect((await migrate(db, ["up", "1", "--dir", dir])).code).toBe(0);
    const child = await halfway(db.url, dir, 10000);
    child.child.kill("SIGKILL");
    await child.exited;
    const [left] = await progress(db.url);
    const partway = await counts(db.url);
    // The cursor and the rows filled moved together: nothing filled past it.
    expect(partway.filled).toBe(Number(left!.rows));
    expect(partway.filled).toBeGreaterThanOrEqual(10000);
    expect(partway.filled).toBeLessThan(30000);
    expect(await recorded(db.url)).toEqual(["1_items"]);

    const status = await migrate(db, ["status", "--dir", dir]);
    expect(status.stdout).toMatch(
      new RegExp(
        `^backfilling: 2_b_expand \\(up\\): ${left!.rows} row\\(s\\) filled \\(backfill 1 of the file\\), last at \\S+Z: \`migrate up\` goes on from there$`,
        "m",
      ),
    );

    // A role that may read the record of what ran but not this one: status
    // still answers, without the backfill.
    const role = `backfill_reader_${process.pid}`;
    await query(db.url, `CREATE ROLE ${role} LOGIN PASSWORD 'reader-pass-1'`);
    try {
      await query(db.url, `GRANT SELECT ON pgmigrations TO ${role}`);
      const url = new URL(db.url);
      url.username = role;
      url.password = "reader-pass-1";
      const limited = await migrate(db, ["status", "--dir", dir], {
        env: { DATABASE_URL: url.toString() },
      });
      expect(limited.code, limited.output).toBe(0);
      expect(limited.stdout).not.toMatch(/backfilling/);
    } finally {
      await query(db.url, `DROP OWNED BY ${role}`);
      await query(db.url, `DROP ROLE ${role}`);
    }

    const resumed = await migrate(db, ["up", "--dir", dir, "--json"]);
    expect(resumed.code, resumed.output).toBe(0);
    expect(await counts(db.url)).toEqual({ filled: 30000, twice: 0, total: 30000 });
    expect(await recorded(db.url)).toEqual(["1_items", "2_b_expand"]);
    const report = JSON.parse(resumed.stdout) as {
      done: { backfills?: { rows: number; resumed: boolean }[] }[];
    };
    expect(report.done[0]!.backfills).toEqual([
      expect.objectContaining({ rows: 30000 - partway.filled, resumed: true }),
    ]);
    expect(resumed.output).toMatch(/resuming a backfill where an earlier run stopped/);
  });

  it("stopped by SIGTERM between ranges, says where it stands and counts no failure", async () => {
    const db = await freshDb();
    const dir = folder({ ...table(20000), ...expand("batch=200 pause=20ms") }, { project: false });
    expect((await migrate(db, ["up", "1", "--dir", dir])).code).toBe(0);
    const child = await halfway(db.url, dir);
    child.child.kill("SIGTERM");
    expect(await child.exited).toBe(143);
    expect(child.output()).toMatch(
      /stopped by SIGTERM after the last range committed: `migrate up` goes on from there/,
    );
    // The file's ALTER before the backfill stays, with the ranges: no advice to check it.
    expect(child.output()).toMatch(
      /what ran before its backfill and every range committed stay applied, its cursor with them/,
    );
    expect(child.output()).not.toMatch(/stay applied and it is not recorded|check them before/);
    expect(await unresolvedFailures(db.url)).toBe(0);
    const resumed = await migrate(db, ["up", "--dir", dir]);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(
      /^filled {3}"items": \d+ row\(s\) in \d+ batch\(es\), \d+ rows\/s \(resumed where an earlier run stopped\)$/m,
    );
    expect(await counts(db.url)).toEqual({ filled: 20000, twice: 0, total: 20000 });
  });

  it("stopped by SIGTERM while a range waits on a lock, rolls that range back and says it stopped", async () => {
    const db = await freshDb();
    // Column b exists before the backfill's file runs: the row lock below
    // then blocks only the range's UPDATE, not an ALTER TABLE.
    const dir = folder(
      {
        "1_items.up.sql": `CREATE TABLE items (id bigserial PRIMARY KEY, a text NOT NULL, fills int NOT NULL DEFAULT 0, b text);
INSERT INTO items (a) SELECT 'item-' || g FROM generate_series(1, 2000) g;\n`,
        "2_b_fill.up.sql": `-- migrate:backfill batch=200 lock_timeout=600s
UPDATE items SET b = upper(a), fills = fills + 1 WHERE b IS NULL;\n`,
      },
      { project: false },
    );
    expect((await migrate(db, ["up", "1", "--dir", dir])).code).toBe(0);
    // A row of the fifth range, locked until the end: that range's UPDATE
    // waits on it (lock_timeout 10 min) until the signal cancels it.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query("BEGIN; SELECT 1 FROM items WHERE id = 900 FOR UPDATE");
      const child = spawnMigrate(["up", "--dir", dir], { env: { DATABASE_URL: db.url } });
      await until(
        () =>
          query<{ n: number }>(
            db.url,
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'
                AND query LIKE '%UPDATE items SET%'`,
          ),
        (r) => r[0]!.n === 1,
      );
      child.child.kill("SIGTERM");
      expect(await child.exited).toBe(143);
      expect(child.output()).toMatch(
        /stopped by SIGTERM after the last range committed: `migrate up` goes on from there/,
      );
      expect(child.output()).not.toMatch(/canceling statement|check them before/);
    } finally {
      await holder.end();
    }
    // Four ranges committed with the cursor; the fifth rolled back whole.
    expect(await progress(db.url)).toEqual([{ stage: 0, cursor: "800", rows: "800" }]);
    expect(await counts(db.url)).toEqual({ filled: 800, twice: 0, total: 2000 });
    expect(await unresolvedFailures(db.url)).toBe(0);
    const resumed = await migrate(db, ["up", "--dir", dir]);
    expect(resumed.code, resumed.output).toBe(0);
    expect(await counts(db.url)).toEqual({ filled: 2000, twice: 0, total: 2000 });
    expect(await recorded(db.url)).toEqual(["1_items", "2_b_fill"]);
  });

  it("is not recorded while rows still match its WHERE, and says how many", async () => {
    const db = await freshDb();
    const dir = folder(
      { ...table(100), ...expand("batch=30", "fills = fills + 1") },
      { project: false },
    );
    const r = await migrate(db, ["up", "--dir", dir]);
    expect(r.code, r.output).toBe(1);
    expect(r.output).toMatch(
      /2_b_expand\.up\.sql:4: 100 row\(s\) of "items" still match the backfill's WHERE after it ran/,
    );
    expect(await recorded(db.url)).toEqual(["1_items"]);
  });

  it("refuses to resume from an edited file, naming what was done", async () => {
    const db = await freshDb();
    const dir = folder(
      { ...table(2000), ...expand("batch=100", "b = upper(a)") },
      { project: false },
    );
    expect((await migrate(db, ["up", "1", "--dir", dir])).code).toBe(0);
    // A begun backfill, as a killed run leaves it.
    await query(db.url, "ALTER TABLE items ADD COLUMN b text");
    const hash = (await import("node:crypto"))
      .createHash("sha256")
      .update("-- another text\n")
      .digest("hex");
    await query(
      db.url,
      `CREATE TABLE migrate_backfills (migration varchar(255) PRIMARY KEY, direction text NOT NULL, hash varchar(64) NOT NULL,
        stage integer NOT NULL DEFAULT 0, cursor text, rows bigint NOT NULL DEFAULT 0, batches bigint NOT NULL DEFAULT 0,
        started_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
       INSERT INTO migrate_backfills (migration, direction, hash, cursor, rows) VALUES ('2_b_expand', 'up', '${hash}', '100', 100)`,
    );
    const r = await migrate(db, ["up", "--dir", dir]);
    expect(r.code, r.output).toBe(1);
    expect(r.output).toMatch(
      /its backfill was begun \S+ \(up\) from another text of this file, and 100 row\(s\) filled: restore the file/,
    );
    expect(await recorded(db.url)).toEqual(["1_items"]);
    writeFileSync(join(dir, "unused"), "");
  });

  it("a dry run says how it will run", async () => {
    const db = await freshDb();
    const dir = folder({ ...table(10), ...expand("batch=250 pause=5ms") }, { project: false });
    const r = await migrate(db, ["up", "--dry-run", "--dir", dir]);
    expect(r.code, r.output).toBe(0);
    expect(r.stdout).toMatch(
      /^-- backfill at line 4: "items" in batches of 250 rows of its key, each its own transaction \(pause 5 ms, lock_timeout the migration's\); recorded once no row matches its WHERE$/m,
    );
    const json = JSON.parse(
      (await migrate(db, ["up", "--dry-run", "--json", "--dir", dir])).stdout,
    ) as {
      steps: { name: string; backfills?: unknown }[];
    };
    expect(json.steps.find((st) => st.name === "2_b_expand")?.backfills).toEqual([
      { line: 4, table: '"items"', batch: 250, pauseMs: 5 },
    ]);
  });

  it("is refused before anything runs when its UPDATE cannot be batched", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        ...table(10),
        "2_b_expand.up.sql":
          "ALTER TABLE items ADD COLUMN b text;\n-- migrate:backfill\nUPDATE items SET b = a;\n",
      },
      { project: false },
    );
    const r = await migrate(db, ["up", "--dir", dir]);
    expect(r.code, r.output).toBe(1);
    expect(r.output).toMatch(
      /2_b_expand\.up\.sql:3: -- migrate:backfill: the UPDATE needs a WHERE/,
    );
    expect(await query(db.url, "SELECT to_regclass('items') AS t")).toEqual([{ t: null }]);
  });

  it("walks a uuid key too", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        "1_u.up.sql":
          "CREATE TABLE u (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), a int NOT NULL);\nINSERT INTO u (a) SELECT g FROM generate_series(1, 2500) g;\n",
        "2_c.up.sql":
          "ALTER TABLE u ADD COLUMN c int;\n-- migrate:backfill batch=300\nUPDATE u SET c = a WHERE c IS NULL;\n",
      },
      { project: false },
    );
    const r = await migrate(db, ["up", "--dir", dir]);
    expect(r.code, r.output).toBe(0);
    expect(await query(db.url, "SELECT count(c)::int AS n FROM u")).toEqual([{ n: 2500 }]);
  });

  it("a row left behind its cursor fails the check once, and the next run walks the table again", async () => {
    const db = await freshDb();
    const dir = folder({ ...table(20000), ...expand("batch=200 pause=20ms") }, { project: false });
    expect((await migrate(db, ["up", "1", "--dir", dir])).code).toBe(0);
    const child = await halfway(db.url, dir);
    child.child.kill("SIGTERM");
    await child.exited;
    // Written below the cursor, with no trigger to fill it.
    await query(db.url, "INSERT INTO items (id, a) VALUES (0, 'behind')");
    const first = await migrate(db, ["up", "--dir", dir]);
    expect(first.code, first.output).toBe(1);
    expect(first.output).toMatch(
      /1 row\(s\) of "items" still match .* `migrate up` walks the table again/,
    );
    const second = await migrate(db, ["up", "--dir", dir]);
    expect(second.code, second.output).toBe(0);
    expect(await counts(db.url)).toEqual({ filled: 20001, twice: 0, total: 20001 });
  });

  it("while begun, refuses a down that would step over it", async () => {
    const db = await freshDb();
    const dir = folder({ ...table(20000), ...expand("batch=200 pause=20ms") }, { project: false });
    expect((await migrate(db, ["up", "1", "--dir", dir])).code).toBe(0);
    const child = await halfway(db.url, dir);
    child.child.kill("SIGTERM");
    await child.exited;
    const down = await migrate(db, ["down", "--dir", dir]);
    expect(down.code, down.output).toBe(1);
    expect(down.output).toMatch(
      /2_b_expand's backfill \(up\) is begun and not finished: finish it with `migrate up` first .*; nothing was changed/,
    );
    expect(await recorded(db.url)).toEqual(["1_items"]);
  });

  it("a contract after it waits for an instance that started while it filled", async () => {
    const db = await freshDb();
    const dir = folder(
      {
        ...table(20000),
        ...expand("batch=200 pause=20ms"),
        "3_a_contract.up.sql":
          '-- migrate:phase contract 2\n-- migrate:allow ban-drop-column "gone"\nALTER TABLE items DROP COLUMN a;\n',
      },
      { project: false },
    );
    const child = await halfway(db.url, dir);
    await query(
      db.url,
      `INSERT INTO migrate_instances (id, host, pid, release, schema_version, started_at, last_seen, expires_at)
       VALUES ('late', 'late-pod', 7, '0.9.0', 1, now(), now(), now() + interval '1 minute')`,
    );
    expect(await child.exited).toBe(1);
    expect(child.output()).toMatch(
      /3_a_contract is a contract and 1 live instance\(s\) still need/,
    );
    expect(child.output()).toMatch(/not begun: nothing of it was applied/);
    expect(child.output()).not.toMatch(/nothing was applied: stop those instances/);
    expect(child.output()).toMatch(/applied {2}2_b_expand/);
    expect(await recorded(db.url)).toEqual(["1_items", "2_b_expand"]);
  });
});
