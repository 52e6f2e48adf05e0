import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MigrationNameError, writeAllOrNone } from "../../internal/migrate/create.js";
import {
  createExpandMigration,
  ExpandOptionError,
  type ExpandFiles,
} from "../../internal/migrate/expand/generate.js";
import type { ExpandValues } from "../../internal/migrate/expand/kind.js";
import { blocking, lintMigrations } from "../../internal/migrate/lint/lint.js";
import { splitStatements } from "../../internal/migrate/sql.js";

// The generator offline: what each kind writes, linted as `migrate lint`
// lints the folder, and what it refuses (with nothing left behind).

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A copy of the project's migrations: the generated files lint after them. */
function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), "kbts-expand-"));
  dirs.push(dir);
  cpSync("migrations", dir, { recursive: true });
  return dir;
}

const NOW = new Date("2026-12-07T01:02:03.456Z");

/** One request per kind, on the project's users table. */
const KIND_CASES: [kind: string, values: ExpandValues][] = [
  ["rename-column", { table: "users", column: "username", to: "login", type: "varchar(50)" }],
  [
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
  ],
  [
    "add-not-null",
    {
      table: "users",
      column: "signup_year",
      type: "integer",
      fill: "extract(year FROM created_at)::int",
    },
  ],
  [
    "split-column",
    {
      table: "users",
      column: "username",
      "old-type": "varchar(50)",
      into: [
        "handle=split_part(username, '.', 1)",
        "realm:text=nullif(split_part(username, '.', 2), '')",
      ],
      join: "handle || coalesce('.' || realm, '')",
    },
  ],
];

const read = (files: ExpandFiles) =>
  Object.fromEntries(Object.entries(files).map(([k, p]) => [k, readFileSync(p, "utf8")])) as Record<
    keyof ExpandFiles,
    string
  >;

describe("each kind", () => {
  it.each(KIND_CASES)("%s: four files that lint with no blocking finding", async (kind, values) => {
    const dir = folder();
    const files = await createExpandMigration({
      dir,
      name: "change_users",
      kind,
      values,
      now: NOW,
    });
    expect(Object.values(files).map((p) => basename(p))).toEqual([
      "20261207010203_change_users_expand.up.sql",
      "20261207010203_change_users_expand.down.sql",
      "20261207010204_change_users_contract.up.sql",
      "20261207010204_change_users_contract.down.sql",
    ]);
    const { findings } = await lintMigrations(dir);
    const ours = findings.filter((f) => f.file.includes("change_users"));
    expect(blocking(ours)).toEqual([]);
    // The contract's drop is an error the file consents to, with its reason.
    if (kind !== "add-not-null")
      expect(ours.filter((f) => f.severity === "error").map((f) => [f.rule, !!f.consent])).toEqual([
        ["ban-drop-column", true],
      ]);
    // Each file parses, and the backfill is the up file's last statement, under its marker.
    const text = read(files);
    const up = splitStatements(text.expandUp, files.expandUp);
    expect(up.at(-1)!.leading).toMatch(/^-- migrate:backfill$/m);
    expect(up.at(-1)!.node.UpdateStmt).toBeDefined();
    expect(up.slice(0, -1).some((s) => s.leading.includes("migrate:backfill"))).toBe(false);
    for (const [k, t] of Object.entries(text)) splitStatements(t, k);
  });

  it.each(KIND_CASES)("%s: the phase lines follow the header comments", async (kind, values) => {
    const files = await createExpandMigration({ dir: folder(), name: "x", kind, values, now: NOW });
    const text = read(files);
    const header = (t: string) => t.slice(0, t.indexOf("\n\n")).split("\n");
    expect(header(text.expandUp).at(-1)).toBe("-- migrate:phase expand");
    expect(header(text.contractUp).at(-1)).toBe("-- migrate:phase contract 20261207010203");
    for (const t of [text.expandUp, text.expandDown, text.contractUp, text.contractDown])
      expect(header(t).every((l) => l.startsWith("-- "))).toBe(true);
    for (const t of [text.expandDown, text.contractDown]) expect(t).not.toContain("migrate:phase");
  });

  it("the contract is a second later, across a day too", async () => {
    const files = await createExpandMigration({
      dir: folder(),
      name: "late",
      kind: "rename-column",
      values: KIND_CASES[0]![1],
      now: new Date("2026-12-31T23:59:59.900Z"),
    });
    expect(basename(files.expandUp)).toBe("20261231235959_late_expand.up.sql");
    expect(basename(files.contractUp)).toBe("20270101000000_late_contract.up.sql");
    expect(readFileSync(files.contractUp, "utf8")).toContain(
      "-- migrate:phase contract 20261231235959\n",
    );
  });

  it("names are quoted as given: upper case, quotes, spaces, schema", async () => {
    const files = await createExpandMigration({
      dir: folder(),
      name: "odd",
      kind: "rename-column",
      values: { table: 'My Schema.Odd"Table', column: "Old Name", to: 'new"name', type: "text" },
      now: NOW,
    });
    const up = readFileSync(files.expandUp, "utf8");
    expect(up).toContain('ALTER TABLE "My Schema"."Odd""Table"\n  ADD COLUMN "new""name" text;');
    expect(up).toContain('(SELECT NEW.*) AS "Odd""Table"');
    expect(up).toContain('CREATE FUNCTION "My Schema"."Odd""Table_new""name_sync"()');
    expect(readFileSync(files.contractUp, "utf8")).toContain(
      'ALTER TABLE "My Schema"."Odd""Table" DROP COLUMN "Old Name";',
    );
  });

  it("a long table and column make trigger names cut to 63 bytes, kept apart by a hash", async () => {
    const long = "t".repeat(63);
    const files = await createExpandMigration({
      dir: folder(),
      name: "long",
      kind: "rename-column",
      values: { table: long, column: "a", to: "é".repeat(31), type: "text" },
      now: NOW,
    });
    const name = /CREATE TRIGGER "([^"]+)"/.exec(readFileSync(files.expandUp, "utf8"))![1]!;
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^t+_[0-9a-f]{8}$/);
  });

  it("an expression over several lines, with a comment, is taken as written", async () => {
    const fill =
      "CASE\n  WHEN created_at < '2020-01-01' THEN 2019 -- the oldest, grouped\n  ELSE 2020\nEND";
    const files = await createExpandMigration({
      dir: folder(),
      name: "multi",
      kind: "add-not-null",
      values: { table: "users", column: "era", type: "integer", fill },
      now: NOW,
    });
    const up = readFileSync(files.expandUp, "utf8");
    expect(up).toContain(`SET "era" = (${fill})`);
    expect(splitStatements(up, "up")).toHaveLength(5);
  });

  it("a fragment holding the function's dollar tag gets another tag", async () => {
    const files = await createExpandMigration({
      dir: folder(),
      name: "tag",
      kind: "change-type",
      values: {
        table: "users",
        column: "username",
        to: "username2",
        type: "text",
        "old-type": "varchar(50)",
        using: "username || $sync$ x $sync$",
      },
      now: NOW,
    });
    const up = readFileSync(files.expandUp, "utf8");
    expect(up).toContain("LANGUAGE plpgsql AS $sync_1$");
    expect(splitStatements(up, "up")).toHaveLength(4);
  });
});

// Each request refused, with the words it must say; nothing is written.
const rename = KIND_CASES[0]![1];
const refusals: [what: string, kind: string, values: ExpandValues, message: RegExp][] = [
  [
    "an unknown kind",
    "rename",
    rename,
    /--expand "rename": unknown kind; the kinds are rename-column, change-type, add-not-null, split-column/,
  ],
  ["an empty kind", "", rename, /unknown kind/],
  [
    "a missing option",
    "rename-column",
    { ...rename, type: undefined },
    /--expand rename-column needs --type/,
  ],
  [
    "an option of another kind",
    "rename-column",
    { ...rename, fill: "1" },
    /--fill does not go with --expand rename-column \(it takes --table, --column, --to, --type\)/,
  ],
  [
    "--into on change-type",
    "change-type",
    { ...KIND_CASES[1]![1], into: ["a=1"] },
    /--into does not go with --expand change-type/,
  ],
  ["an empty table", "rename-column", { ...rename, table: "" }, /--table is empty/],
  [
    "a NUL in a name",
    "rename-column",
    { ...rename, to: "lo\0gin" },
    /--to "lo\\u0000gin": a name may not hold a NUL/,
  ],
  [
    "a line break in a name",
    "rename-column",
    { ...rename, to: "a\nb" },
    /--to "a\\nb": a name may not hold a NUL or another control character/,
  ],
  [
    "a 64-byte name",
    "rename-column",
    { ...rename, to: "x".repeat(64) },
    /--to "x{64}": longer than 63 bytes/,
  ],
  [
    "a 64-byte name in UTF-8",
    "rename-column",
    { ...rename, column: "é".repeat(32) },
    /--column .*longer than 63 bytes/,
  ],
  [
    "three-part table",
    "rename-column",
    { ...rename, table: "db.public.users" },
    /--table "db.public.users": give table or schema.table/,
  ],
  ["an empty schema", "rename-column", { ...rename, table: ".users" }, /--table is empty/],
  [
    "space around a name",
    "rename-column",
    { ...rename, column: " username" },
    /space before or after/,
  ],
  [
    "the same column",
    "rename-column",
    { ...rename, to: "username" },
    /--to "username": the same column as --column/,
  ],
  [
    "a table named new",
    "rename-column",
    { ...rename, table: "new" },
    /--table new: a table named new clashes/,
  ],
  ["an empty type", "rename-column", { ...rename, type: " " }, /--type is empty: give a type/],
  [
    "a type with a default",
    "rename-column",
    { ...rename, type: "int DEFAULT 1" },
    /--type "int DEFAULT 1": not a type PostgreSQL parses/,
  ],
  [
    "a type ending the statement",
    "rename-column",
    { ...rename, type: "int; DROP TABLE users" },
    /--type "int; DROP TABLE users": expected a type alone/,
  ],
  [
    "a type with a collation",
    "rename-column",
    { ...rename, type: 'text COLLATE "C"' },
    /--type .*expected a type such as text/,
  ],
  [
    "an expression escaping its parentheses",
    "add-not-null",
    { ...KIND_CASES[2]![1], fill: "1); DROP TABLE users; SELECT (1" },
    /--fill .*expected an expression alone/,
  ],
  [
    "an expression with a FROM",
    "add-not-null",
    { ...KIND_CASES[2]![1], fill: "1) FROM users WHERE (true" },
    /--fill .*expected one expression/,
  ],
  [
    "an expression ending in a comment",
    "add-not-null",
    { ...KIND_CASES[2]![1], fill: "1 --" },
    /--fill "1 --": not an expression PostgreSQL parses/,
  ],
  [
    "an unterminated string",
    "change-type",
    { ...KIND_CASES[1]![1], back: "'abc" },
    /--back "'abc": not an expression PostgreSQL parses/,
  ],
  [
    "two expressions",
    "change-type",
    { ...KIND_CASES[1]![1], using: "1, 2" },
    /--using "1, 2": expected one expression/,
  ],
  [
    "a marker line in an expression",
    "add-not-null",
    { ...KIND_CASES[2]![1], fill: "1\n-- migrate:phase contract 1\n" },
    /--fill "1\\n-- migrate:phase contract 1\\n": holds a -- migrate: marker line/,
  ],
  [
    "a NUL in an expression",
    "change-type",
    { ...KIND_CASES[1]![1], using: "a\0" },
    /--using: a NUL byte/,
  ],
  [
    "--into once",
    "split-column",
    { ...KIND_CASES[3]![1], into: ["a=1"] },
    /--into given once: a split makes two columns or more/,
  ],
  [
    "--into without =",
    "split-column",
    { ...KIND_CASES[3]![1], into: ["a", "b=1"] },
    /--into "a": expected NEW=EXPR or NEW:TYPE=EXPR/,
  ],
  [
    "--into with a bad type",
    "split-column",
    { ...KIND_CASES[3]![1], into: ["a:in t=1", "b=1"] },
    /--into a:TYPE "in t": not a type/,
  ],
  [
    "--into twice the same",
    "split-column",
    { ...KIND_CASES[3]![1], into: ["a=1", "a=2"] },
    /--into "a": the same column as --into/,
  ],
  [
    "--into naming the old column",
    "split-column",
    { ...KIND_CASES[3]![1], into: ["username=1", "b=2"] },
    /--into "username": the same column as --column/,
  ],
  [
    "--table twice",
    "rename-column",
    { ...rename, table: ["users", "users"] },
    /--table given more than once/,
  ],
];

describe("refusals", () => {
  it.each(refusals)("%s", async (_, kind, values, message) => {
    const dir = folder();
    const before = readdirSync(dir);
    const err = await createExpandMigration({ dir, name: "refused", kind, values, now: NOW }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ExpandOptionError);
    expect((err as Error).message).toMatch(message);
    expect(readdirSync(dir)).toEqual(before);
  });

  it.each(["", "Rename", "a-b", "a\0b", "x".repeat(101)])(
    "the name %j, as create refuses it",
    async (name) => {
      const dir = folder();
      const before = readdirSync(dir);
      const err = await createExpandMigration({
        dir,
        name,
        kind: "rename-column",
        values: rename,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MigrationNameError);
      expect((err as Error).message).toMatch(/use lowercase letters, digits and underscores/);
      expect(readdirSync(dir)).toEqual(before);
    },
  );

  it("a version already used (the contract's second) writes none of the four", async () => {
    const dir = folder();
    writeFileSync(join(dir, "20261207010204_other.up.sql"), "SELECT 1;\n");
    const before = readdirSync(dir);
    await expect(
      createExpandMigration({
        dir,
        name: "clash",
        kind: "rename-column",
        values: rename,
        now: NOW,
      }),
    ).rejects.toThrow(/version 20261207010204 is already used by .*20261207010204_other\.up\.sql/);
    expect(readdirSync(dir)).toEqual(before);
  });

  it("a write failing midway removes the files written before it", () => {
    const dir = folder();
    const before = readdirSync(dir);
    const files = ["a.up.sql", "a.down.sql", "missing/b.up.sql", "b.down.sql"].map((f) => ({
      path: join(dir, f),
      text: "SELECT 1;\n",
    }));
    expect(() => writeAllOrNone(files)).toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual(before);
  });

  it("an existing file is never overwritten", () => {
    const dir = folder();
    writeFileSync(join(dir, "b.sql"), "kept");
    const files = [join(dir, "a.sql"), join(dir, "b.sql")].map((path) => ({ path, text: "new" }));
    expect(() => writeAllOrNone(files)).toThrow(/b\.sql already exists/);
    expect(readFileSync(join(dir, "b.sql"), "utf8")).toBe("kept");
    expect(readdirSync(dir)).not.toContain("a.sql");
  });
});
