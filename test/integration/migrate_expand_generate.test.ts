import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createExpandMigration } from "../../internal/migrate/expand/generate.js";
import type { ExpandValues } from "../../internal/migrate/expand/kind.js";
import { migratorOptions } from "../../internal/migrate/options.js";
import { run, type Command } from "../../internal/migrate/runner.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { catalogSnapshot, query } from "../helpers/catalog.js";
import type { TestDatabase } from "../helpers/db.js";
import { migrationFixtures, projectNames } from "../helpers/migrations.js";
import { runMigrate } from "../helpers/process.js";

// Each kind of `migrate create --expand`, generated into a copy of the
// project's migrations and applied by the runner to a fresh database with
// the project's schema and rows in `users`: the sync trigger both ways
// while both releases write, every row before backfilled, the contract
// keeping the data, and both downs reverting cleanly.

const { freshDb, folder } = migrationFixtures();
const silent = createLogger({ level: "silent", format: "json" });

/** The project's schema on a fresh database, then `setup` (rows in users), and the generated files in the folder. */
async function prepared(kind: string, values: ExpandValues, setup: string) {
  const db = await freshDb();
  const dir = folder();
  await createExpandMigration({ dir, name: "change_users", kind, values });
  const opts = { ...migratorOptions(undefined, db.url, silent), dir };
  const step = async (command: Command) => {
    const report = await run(opts, command);
    expect(report.failed, JSON.stringify(report.failed)).toBeUndefined();
    expect(report.done).toHaveLength(1);
  };
  const project = await run(opts, { kind: "up", count: projectNames.length });
  expect(project.failed).toBeUndefined();
  await query(db.url, setup);
  return {
    db,
    sql: <T extends object = Record<string, unknown>>(text: string, params: unknown[] = []) =>
      query<T>(db.url, text, params),
    expand: () => step({ kind: "up", count: 1 }),
    contract: () => step({ kind: "up", count: 1 }),
    down: () => step({ kind: "down", count: 1 }),
  };
}

const columnsOf = async (db: TestDatabase) =>
  (
    await query<{ c: string }>(
      db.url,
      "SELECT attname AS c FROM pg_attribute WHERE attrelid = 'users'::regclass AND attnum > 0 AND NOT attisdropped",
    )
  ).map((r) => r.c);

describe("rename-column", () => {
  it("users.username → login: both releases read and write through expand; contract and both downs keep the data", async () => {
    const t = await prepared(
      "rename-column",
      { table: "users", column: "username", to: "login", type: "varchar(255)" },
      "INSERT INTO users (username, password_hash) VALUES ('before1', 'x'), ('before2', 'x')",
    );
    const schemaBefore = await catalogSnapshot(t.db.url);
    await t.expand();
    const pairs = () => t.sql("SELECT username, login FROM users ORDER BY id");
    // Every row before, backfilled.
    expect(await pairs()).toEqual([
      { username: "before1", login: "before1" },
      { username: "before2", login: "before2" },
    ]);
    // The previous release writes only username; the new one only login (username stays NOT NULL).
    await t.sql("INSERT INTO users (username, password_hash) VALUES ('old_insert', 'x')");
    await t.sql("INSERT INTO users (login, password_hash) VALUES ('new_insert', 'x')");
    await t.sql("UPDATE users SET username = 'old_update' WHERE username = 'before1'");
    await t.sql("UPDATE users SET login = 'new_update' WHERE login = 'before2'");
    // Both written at once: the new side wins.
    await t.sql("UPDATE users SET username = 'lost', login = 'both' WHERE login = 'old_insert'");
    expect(await pairs()).toEqual([
      { username: "old_update", login: "old_update" },
      { username: "new_update", login: "new_update" },
      { username: "both", login: "both" },
      { username: "new_insert", login: "new_insert" },
    ]);
    const logins = ["old_update", "new_update", "both", "new_insert"];

    await t.contract();
    expect(await columnsOf(t.db)).not.toContain("username");
    expect((await t.sql("SELECT login FROM users ORDER BY id")).map((r) => r.login)).toEqual(
      logins,
    );
    await t.sql("INSERT INTO users (login, password_hash) VALUES ('after', 'x')");

    // Rolling back: username is back, refilled, and in step for the previous release.
    await t.down();
    expect(await pairs()).toEqual([...logins, "after"].map((l) => ({ username: l, login: l })));
    await t.sql("INSERT INTO users (username, password_hash) VALUES ('old_again', 'x')");
    expect(await t.sql("SELECT login FROM users WHERE username = 'old_again'")).toEqual([
      { login: "old_again" },
    ]);
    await t.down();
    expect(await columnsOf(t.db)).not.toContain("login");
    expect((await t.sql("SELECT username FROM users ORDER BY id")).map((r) => r.username)).toEqual([
      ...logins,
      "after",
      "old_again",
    ]);
    // What the contract dropped with the column (its NOT NULL, its unique
    // indexes) its down cannot know: the expand's down leaves the rest as before.
    const lost = schemaBefore.filter((l) => !l.includes("username"));
    expect((await catalogSnapshot(t.db.url)).filter((l) => !l.includes("username"))).toEqual(lost);
  });
});

describe("change-type", () => {
  it("users.name_hash (hex text) → name_hash_bytes bytea with --using and --back: the expand and its down", async () => {
    const t = await prepared(
      "change-type",
      {
        table: "public.users",
        column: "name_hash",
        to: "name_hash_bytes",
        type: "bytea",
        "old-type": "varchar(64)",
        using: "decode(name_hash, 'hex')",
        back: "encode(name_hash_bytes, 'hex')",
      },
      "INSERT INTO users (username, password_hash, name_hash) VALUES ('a', 'x', 'abcd'), ('b', 'x', NULL), ('c', 'x', '0102')",
    );
    const schemaBefore = await catalogSnapshot(t.db.url);
    await t.expand();
    const rows = () =>
      t.sql<{ username: string; name_hash: string | null; b: string | null }>(
        "SELECT username, name_hash, encode(name_hash_bytes, 'hex') AS b FROM users ORDER BY id",
      );
    expect(await rows()).toEqual([
      { username: "a", name_hash: "abcd", b: "abcd" },
      { username: "b", name_hash: null, b: null },
      { username: "c", name_hash: "0102", b: "0102" },
    ]);
    await t.sql("INSERT INTO users (username, password_hash, name_hash) VALUES ('old', 'x', 'ff')");
    await t.sql(
      "INSERT INTO users (username, password_hash, name_hash_bytes) VALUES ('new', 'x', '\\xee')",
    );
    await t.sql("UPDATE users SET name_hash = '0a' WHERE username = 'b'");
    await t.sql("UPDATE users SET name_hash_bytes = '\\x0b' WHERE username = 'c'");
    // Upper-case hex is what the previous release may write: the new side keeps
    // its bytes and the old side its text (no round trip rewrites it).
    await t.sql("UPDATE users SET name_hash = 'ABCD' WHERE username = 'a'");
    expect(await rows()).toEqual([
      { username: "a", name_hash: "ABCD", b: "abcd" },
      { username: "b", name_hash: "0a", b: "0a" },
      { username: "c", name_hash: "0b", b: "0b" },
      { username: "old", name_hash: "ff", b: "ff" },
      { username: "new", name_hash: "ee", b: "ee" },
    ]);

    // Its contract could not drop name_hash: users_index_slots' trigger is
    // fired by UPDATE OF name_hash, and PostgreSQL refuses to drop a column
    // another trigger names (see the full cycle on created_at below).
    await t.down();
    expect(await columnsOf(t.db)).not.toContain("name_hash_bytes");
    expect(await catalogSnapshot(t.db.url)).toEqual(schemaBefore);
  });

  it("users.created_at timestamp → created_at_tz timestamptz: expand, contract and both downs", async () => {
    const t = await prepared(
      "change-type",
      {
        table: "users",
        column: "created_at",
        to: "created_at_tz",
        type: "timestamptz",
        "old-type": "timestamp",
        using: "created_at AT TIME ZONE 'UTC'",
        back: "created_at_tz AT TIME ZONE 'UTC'",
      },
      "INSERT INTO users (username, password_hash, created_at) VALUES ('a', 'x', '2020-01-02 03:04:05')",
    );
    await t.sql("ALTER DATABASE " + t.db.name + " SET timezone = 'Asia/Shanghai'");
    await t.expand();
    const rows = () =>
      t.sql<{ username: string; old: string; new: string }>(
        `SELECT username, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') AS old,
                to_char(created_at_tz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS new
           FROM users ORDER BY id`,
      );
    // The previous release's insert takes created_at's default; the new one's sets created_at_tz.
    await t.sql(
      "INSERT INTO users (username, password_hash, created_at) VALUES ('old', 'x', '2021-06-07 08:00:00')",
    );
    await t.sql(
      "INSERT INTO users (username, password_hash, created_at_tz) VALUES ('new', 'x', '2022-01-01 12:00:00+00')",
    );
    await t.sql("INSERT INTO users (username, password_hash) VALUES ('neither', 'x')");
    const expected = [
      { username: "a", old: "2020-01-02 03:04:05", new: "2020-01-02 03:04:05" },
      { username: "old", old: "2021-06-07 08:00:00", new: "2021-06-07 08:00:00" },
      { username: "new", old: "2022-01-01 12:00:00", new: "2022-01-01 12:00:00" },
    ];
    const all = await rows();
    expect(all.slice(0, 3)).toEqual(expected);
    expect(all[3]!.old).toBe(all[3]!.new);

    await t.contract();
    expect(await columnsOf(t.db)).not.toContain("created_at");
    await t.down();
    expect((await rows()).slice(0, 3)).toEqual(expected);
    await t.down();
    expect(await columnsOf(t.db)).not.toContain("created_at_tz");
    expect(
      (
        await t.sql(
          "SELECT to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') AS c FROM users ORDER BY id",
        )
      )
        .slice(0, 3)
        .map((r) => r.c),
    ).toEqual(expected.map((e) => e.old));
  });
});

describe("change-type, json to jsonb", () => {
  it("json has no equality: compared by its text; the previous release's text is kept as written", async () => {
    const t = await prepared(
      "change-type",
      { table: "users", column: "prefs", to: "prefs_b", type: "jsonb", "old-type": "json" },
      `ALTER TABLE users ADD COLUMN prefs json;
       INSERT INTO users (username, password_hash, prefs) VALUES ('a', 'x', '{ "b" :2,"a":1 }'), ('b', 'x', NULL)`,
    );
    await t.expand();
    const rows = () =>
      t.sql("SELECT prefs::text AS old, prefs_b::text AS new FROM users ORDER BY id");
    expect(await rows()).toEqual([
      { old: '{ "b" :2,"a":1 }', new: '{"a": 1, "b": 2}' },
      { old: null, new: null },
    ]);
    await t.sql(`UPDATE users SET prefs = '{"c":3}' WHERE username = 'b'`);
    await t.sql(`UPDATE users SET prefs_b = '{"a": 1, "b": 2}' WHERE username = 'a'`);
    await t.sql(`INSERT INTO users (username, password_hash, prefs_b) VALUES ('c', 'x', '[1, 2]')`);
    expect(await rows()).toEqual([
      { old: '{ "b" :2,"a":1 }', new: '{"a": 1, "b": 2}' },
      { old: '{"c":3}', new: '{"c": 3}' },
      { old: "[1, 2]", new: "[1, 2]" },
    ]);
    await t.contract();
    await t.down();
    expect((await rows()).map((r) => r.new)).toEqual(['{"a": 1, "b": 2}', '{"c": 3}', "[1, 2]"]);
    await t.down();
    expect(await columnsOf(t.db)).not.toContain("prefs_b");
  });
});

describe("add-not-null", () => {
  it("users.signup_year filled for the previous release's writes and the rows before, NOT NULL after the contract", async () => {
    const t = await prepared(
      "add-not-null",
      {
        table: "users",
        column: "signup_year",
        type: "integer",
        fill: "extract(year FROM created_at)::int",
      },
      "INSERT INTO users (username, password_hash, created_at) VALUES ('a', 'x', '2020-05-01'), ('b', 'x', '2021-05-01')",
    );
    const before = await catalogSnapshot(t.db.url);
    await t.expand();
    const years = async () =>
      (await t.sql("SELECT signup_year FROM users ORDER BY id")).map((r) => r.signup_year);
    expect(await years()).toEqual([2020, 2021]);
    // The previous release knows nothing of the column; the new one sets it.
    await t.sql(
      "INSERT INTO users (username, password_hash, created_at) VALUES ('old', 'x', '2022-01-01')",
    );
    await t.sql(
      "INSERT INTO users (username, password_hash, signup_year) VALUES ('new', 'x', 1999)",
    );
    await t.sql("UPDATE users SET username = 'a2' WHERE username = 'a'");
    expect(await years()).toEqual([2020, 2021, 2022, 1999]);
    // The check, NOT VALID, holds new writes already.
    await t.sql("ALTER TABLE users DISABLE TRIGGER users_signup_year_fill");
    await expect(
      t.sql("INSERT INTO users (username, password_hash) VALUES ('none', 'x')"),
    ).rejects.toThrow(/users_signup_year_not_null/);
    await t.sql("ALTER TABLE users ENABLE TRIGGER users_signup_year_fill");

    await t.contract();
    expect(
      await t.sql(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'signup_year'",
      ),
    ).toEqual([{ attnotnull: true }]);
    expect(
      await t.sql("SELECT tgname FROM pg_trigger WHERE tgname = 'users_signup_year_fill'"),
    ).toEqual([]);
    expect(
      await t.sql("SELECT conname FROM pg_constraint WHERE conname = 'users_signup_year_not_null'"),
    ).toEqual([]);
    await expect(
      t.sql("INSERT INTO users (username, password_hash) VALUES ('none', 'x')"),
    ).rejects.toThrow(/signup_year/);
    expect(await years()).toEqual([2020, 2021, 2022, 1999]);

    await t.down();
    await t.sql(
      "INSERT INTO users (username, password_hash, created_at) VALUES ('old2', 'x', '2023-03-03')",
    );
    expect(await years()).toEqual([2020, 2021, 2022, 1999, 2023]);
    await t.down();
    expect(await columnsOf(t.db)).not.toContain("signup_year");
    expect(await catalogSnapshot(t.db.url)).toEqual(before);
  });
});

describe("split-column", () => {
  it("users.username → handle and realm, --join rebuilding it", async () => {
    const t = await prepared(
      "split-column",
      {
        table: "users",
        column: "username",
        "old-type": "varchar(255)",
        into: [
          "handle=split_part(username, '@', 1)",
          "realm:text=nullif(split_part(username, '@', 2), '')",
        ],
        join: "handle || coalesce('@' || realm, '')",
      },
      "INSERT INTO users (username, password_hash) VALUES ('ann@north', 'x'), ('bob', 'x')",
    );
    await t.expand();
    const rows = () => t.sql("SELECT username, handle, realm FROM users ORDER BY id");
    expect(await rows()).toEqual([
      { username: "ann@north", handle: "ann", realm: "north" },
      { username: "bob", handle: "bob", realm: null },
    ]);
    await t.sql("INSERT INTO users (username, password_hash) VALUES ('cy@east', 'x')");
    await t.sql("INSERT INTO users (handle, realm, password_hash) VALUES ('di', 'west', 'x')");
    await t.sql("UPDATE users SET username = 'bob@south' WHERE username = 'bob'");
    await t.sql("UPDATE users SET realm = 'up' WHERE handle = 'ann'");
    const split = [
      { username: "ann@up", handle: "ann", realm: "up" },
      { username: "bob@south", handle: "bob", realm: "south" },
      { username: "cy@east", handle: "cy", realm: "east" },
      { username: "di@west", handle: "di", realm: "west" },
    ];
    expect(await rows()).toEqual(split);

    await t.contract();
    expect(await columnsOf(t.db)).not.toContain("username");
    expect(await t.sql("SELECT handle, realm FROM users ORDER BY id")).toEqual(
      split.map(({ handle, realm }) => ({ handle, realm })),
    );
    await t.down();
    expect(await rows()).toEqual(split);
    await t.down();
    expect(await columnsOf(t.db)).not.toContain("handle");
    expect(await t.sql("SELECT username FROM users ORDER BY id")).toEqual(
      split.map(({ username }) => ({ username })),
    );
  });
});

describe("the command", () => {
  it("writes the four files, and refuses a wrong option with exit 2 writing nothing", async () => {
    const dir = folder();
    const made = await runMigrate([
      "create",
      "rename_username",
      "--expand",
      "rename-column",
      "--table",
      "users",
      "--column",
      "username",
      "--to",
      "login",
      "--type",
      "varchar(255)",
      "--dir",
      dir,
    ]);
    expect(made.code, made.output).toBe(0);
    const written = readdirSync(dir).filter((f) => f.includes("rename_username"));
    expect(made.stdout.trim().split("\n")).toHaveLength(4);
    expect(written.map((f) => f.replace(/^\d{14}_/, "")).sort()).toEqual([
      "rename_username_contract.down.sql",
      "rename_username_contract.up.sql",
      "rename_username_expand.down.sql",
      "rename_username_expand.up.sql",
    ]);
    // A negative number is SQL after --fill (elsewhere `-1` is refused as a
    // count). In a folder of its own: in this one, the same second's version is taken.
    const other = folder();
    const negative = await runMigrate([
      "create",
      "default_minus_one",
      "--expand",
      "add-not-null",
      "--table",
      "users",
      "--column",
      "score",
      "--type",
      "int",
      "--fill",
      "-1",
      "--dir",
      other,
    ]);
    expect(negative.code, negative.output).toBe(0);
    expect(readdirSync(other).filter((f) => f.includes("default_minus_one"))).toHaveLength(4);
    const before = readdirSync(dir);
    for (const [args, message] of [
      [["--expand", "rename"], /unknown kind; the kinds are rename-column, change-type/],
      [
        [
          "--expand",
          "add-not-null",
          "--table",
          "users",
          "--column",
          "c",
          "--type",
          "int",
          "--fill",
          "1",
          "--to",
          "x",
        ],
        /--to does not go with --expand add-not-null/,
      ],
      [["--table", "users"], /--table goes with --expand KIND/],
      [
        [
          "--expand",
          "split-column",
          "--into",
          "a=1",
          "--into",
          "b=2",
          "--table",
          "users",
          "--column",
          "username",
          "--old-type",
          "text",
        ],
        /--expand split-column needs --join/,
      ],
      [
        [
          "--expand",
          "add-not-null",
          "--table",
          "users",
          "--column",
          "c",
          "--type",
          "int",
          "--fill",
          "1; DROP TABLE users",
        ],
        /--fill "1; DROP TABLE users": not an expression PostgreSQL parses/,
      ],
    ] as [string[], RegExp][]) {
      const refused = await runMigrate(["create", "x", ...args, "--dir", dir]);
      expect(refused.code, refused.output).toBe(2);
      expect(refused.output).toMatch(message);
    }
    expect(readdirSync(dir)).toEqual(before);
  });
});
