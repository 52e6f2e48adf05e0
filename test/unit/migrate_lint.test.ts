// Longer than most: one row per rule (its dangerous case and its safe twin).
import { beforeAll, describe, expect, it } from "vitest";
import { lintMigrationFile, lintMigrationFiles, RULES } from "../../internal/migrate/lint/lint.js";
import { loadParsers } from "../../internal/migrate/lint/parser.js";
import { BASE_SCHEMA, migration } from "../helpers/lint_fixture.js";

beforeAll(loadParsers);

/** Rules that fire on `sql` as the second migration, after the populated base schema. */
async function rulesOf(sql: string, style = false): Promise<string[]> {
  const findings = await lintMigrationFiles([migration(1, BASE_SCHEMA), migration(2, sql)], {
    only: new Set(["000002_case"]),
    style,
  });
  return findings.map((f) => f.rule);
}

// Each rule: the dangerous statement, and its safe twin that must stay silent.
const cases: [rule: string, danger: string, safe: string][] = [
  [
    "adding-field-with-default",
    "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid();",
    "ALTER TABLE users ADD COLUMN flag boolean DEFAULT false;",
  ],
  [
    "adding-field-with-default",
    "ALTER TABLE events ADD COLUMN seen timestamptz DEFAULT clock_timestamp();",
    "ALTER TABLE events ADD COLUMN seen timestamptz DEFAULT now();",
  ],
  [
    "adding-field-with-default",
    "ALTER TABLE users ADD COLUMN r float8 DEFAULT random();",
    "ALTER TABLE users ADD COLUMN r float8;",
  ],
  [
    "adding-field-with-default",
    "ALTER TABLE users ADD COLUMN twice int GENERATED ALWAYS AS (age * 2) STORED;",
    "CREATE TABLE t2 (a int, b int GENERATED ALWAYS AS (a * 2) STORED);",
  ],
  [
    "adding-foreign-key-constraint",
    "ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id);",
    "ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;",
  ],
  [
    "adding-foreign-key-constraint",
    "ALTER TABLE orders ADD COLUMN buyer bigint REFERENCES users (id);",
    "ALTER TABLE orders ADD COLUMN buyer bigint;",
  ],
  [
    "adding-not-nullable-field",
    "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
    "ALTER TABLE users ADD CONSTRAINT email_nn CHECK (email IS NOT NULL);\nALTER TABLE users ALTER COLUMN email SET NOT NULL;",
  ],
  [
    "adding-required-field",
    "ALTER TABLE users ADD COLUMN nick text NOT NULL;",
    "ALTER TABLE users ADD COLUMN nick text NOT NULL DEFAULT '';",
  ],
  [
    "adding-serial-primary-key-field",
    "ALTER TABLE events DROP CONSTRAINT events_pkey, ADD PRIMARY KEY (id);",
    "ALTER TABLE events ADD CONSTRAINT events_pk PRIMARY KEY USING INDEX events_id_unique;",
  ],
  [
    "ban-concurrent-index-creation-in-transaction",
    "BEGIN;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);\nCOMMIT;",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);",
  ],
  [
    "ban-drop-column",
    "ALTER TABLE users DROP COLUMN age;",
    "ALTER TABLE users ADD COLUMN age2 int;",
  ],
  ["ban-drop-database", "DROP DATABASE other;", "SELECT 1;"],
  [
    "ban-drop-not-null",
    "ALTER TABLE users ALTER COLUMN id DROP NOT NULL;",
    "ALTER TABLE users ALTER COLUMN age SET DEFAULT 0;",
  ],
  ["ban-drop-table", "DROP TABLE events;", "CREATE TABLE scratch (a int);\nDROP TABLE scratch;"],
  [
    "ban-drop-table",
    "DROP TABLE public.events;",
    "CREATE TABLE scratch (a int);\nDROP TABLE public.scratch;",
  ],
  ["ban-truncate-cascade", "TRUNCATE users CASCADE;", "SELECT 1;"],
  [
    "ban-create-domain-with-constraint",
    "CREATE DOMAIN positive AS int CHECK (VALUE > 0);",
    "CREATE DOMAIN amount AS numeric;",
  ],
  [
    "ban-alter-domain-with-add-constraint",
    "ALTER DOMAIN amount ADD CONSTRAINT amount_pos CHECK (VALUE > 0);",
    "ALTER DOMAIN amount SET DEFAULT 0;",
  ],
  ["ban-uncommitted-transaction", "BEGIN;\nSELECT 1;", "BEGIN;\nSELECT 1;\nCOMMIT;"],
  [
    "changing-column-type",
    "ALTER TABLE users ALTER COLUMN age TYPE bigint;",
    "ALTER TABLE users ALTER COLUMN name TYPE varchar(20);",
  ],
  [
    "changing-column-type",
    "ALTER TABLE users ALTER COLUMN name TYPE varchar(5);",
    "ALTER TABLE users ALTER COLUMN name TYPE text;",
  ],
  [
    "changing-column-type",
    "ALTER TABLE users ALTER COLUMN price TYPE numeric(10,3);",
    "ALTER TABLE users ALTER COLUMN price TYPE numeric(12,2);",
  ],
  [
    "changing-column-type",
    "ALTER TABLE users ALTER COLUMN age TYPE int USING age + 1;",
    "ALTER TABLE users ALTER COLUMN age TYPE integer;",
  ],
  [
    "constraint-missing-not-valid",
    "ALTER TABLE users ADD CONSTRAINT age_pos CHECK (age > 0);",
    "ALTER TABLE users ADD CONSTRAINT age_pos CHECK (age > 0) NOT VALID;",
  ],
  [
    "constraint-missing-not-valid",
    "ALTER TABLE users ADD CONSTRAINT age_pos CHECK (age > 0) NOT VALID;\nALTER TABLE users VALIDATE CONSTRAINT age_pos;",
    "ALTER TABLE users VALIDATE CONSTRAINT age_pos;",
  ],
  [
    "disallowed-unique-constraint",
    "ALTER TABLE users ADD CONSTRAINT email_u UNIQUE (email);",
    "ALTER TABLE users ADD CONSTRAINT email_u UNIQUE USING INDEX users_email_u;",
  ],
  [
    "disallowed-unique-constraint",
    "ALTER TABLE users ADD COLUMN handle text UNIQUE;",
    "ALTER TABLE users ADD COLUMN handle text;",
  ],
  [
    "prefer-robust-stmts",
    "CREATE INDEX CONCURRENTLY users_email ON users (email);",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);",
  ],
  [
    "renaming-column",
    "ALTER TABLE users RENAME COLUMN email TO mail;",
    "CREATE TABLE t3 (a int);\nALTER TABLE t3 RENAME COLUMN a TO b;",
  ],
  [
    "renaming-table",
    "ALTER TABLE events RENAME TO happenings;",
    "CREATE TABLE t4 (a int);\nALTER TABLE t4 RENAME TO t5;",
  ],
  [
    "require-concurrent-index-creation",
    "CREATE INDEX users_email ON users (email);",
    "CREATE TABLE t6 (a int);\nCREATE INDEX t6_a ON t6 (a);",
  ],
  [
    "require-concurrent-index-deletion",
    "DROP INDEX orders_user_id;",
    "DROP INDEX CONCURRENTLY IF EXISTS orders_user_id;",
  ],
  ["transaction-nesting", "BEGIN;\nSELECT 1;\nCOMMIT;", "SELECT 1;"],
  ["vacuum-full", "VACUUM FULL users;", "VACUUM users;"],
  ["vacuum-full", "VACUUM FULL;", "VACUUM;"],
  ["cluster", "CLUSTER users USING users_pkey;", "SELECT 1;"],
  ["lock-table", "LOCK TABLE users IN ACCESS EXCLUSIVE MODE;", "SELECT 1;"],
  [
    "refresh-materialized-view",
    "REFRESH MATERIALIZED VIEW order_totals;",
    "REFRESH MATERIALIZED VIEW CONCURRENTLY order_totals;",
  ],
  [
    "adding-serial-field",
    "ALTER TABLE events ADD COLUMN seq serial;",
    "ALTER TABLE events ADD COLUMN seq bigint;",
  ],
  ["set-unlogged", "ALTER TABLE events SET UNLOGGED;", "CREATE UNLOGGED TABLE t7 (a int);"],
  ["update-without-where", "UPDATE users SET age = 0;", "UPDATE users SET age = 0 WHERE id < 100;"],
  ["delete-without-where", "DELETE FROM orders;", "DELETE FROM orders WHERE status = 'void';"],
  ["ban-drop-schema-cascade", "DROP SCHEMA audit CASCADE;", "DROP SCHEMA IF EXISTS audit;"],
  ["require-concurrent-reindex", "REINDEX TABLE users;", "REINDEX TABLE CONCURRENTLY users;"],
  [
    "adding-exclusion-constraint",
    "ALTER TABLE events ADD CONSTRAINT no_overlap EXCLUDE USING gist (id WITH =);",
    "CREATE TABLE t8 (a int, EXCLUDE USING gist (a WITH =));",
  ],
  [
    "foreign-key-without-index",
    "CREATE TABLE items (id bigint PRIMARY KEY, order_id bigint REFERENCES orders (id));",
    "CREATE TABLE items (id bigint PRIMARY KEY, order_id bigint REFERENCES orders (id));\nCREATE INDEX items_order ON items (order_id);",
  ],
  [
    "ban-drop-table",
    "DO $$ BEGIN EXECUTE 'DROP TABLE events'; END $$;",
    "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$;",
  ],
  [
    "ban-drop-column",
    "DO $$ BEGIN\n  ALTER TABLE users DROP COLUMN age;\nEND $$;",
    "DO $$ BEGIN\n  PERFORM 1;\nEND $$;",
  ],
  [
    "unchecked-dynamic-sql",
    "DO $$ BEGIN EXECUTE format('DROP TABLE %I', 'events'); END $$;",
    "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$;",
  ],
];

const style: [rule: string, danger: string, safe: string][] = [
  ["ban-char-field", "CREATE TABLE s1 (code char(3));", "CREATE TABLE s1 (code text);"],
  ["prefer-text-field", "CREATE TABLE s1 (code varchar(3));", "CREATE TABLE s1 (code text);"],
  ["prefer-timestamptz", "CREATE TABLE s1 (at timestamp);", "CREATE TABLE s1 (at timestamptz);"],
  ["prefer-bigint-over-int", "CREATE TABLE s1 (n int);", "CREATE TABLE s1 (n bigint);"],
  ["prefer-bigint-over-smallint", "CREATE TABLE s1 (n smallint);", "CREATE TABLE s1 (n bigint);"],
  [
    "prefer-identity",
    "CREATE TABLE s1 (id bigserial);",
    "CREATE TABLE s1 (id bigint GENERATED BY DEFAULT AS IDENTITY);",
  ],
];

describe("each rule on its dangerous case and its safe twin", () => {
  it.each(cases)("%s: %s", async (rule, danger, safe) => {
    expect(await rulesOf(danger)).toContain(rule);
    expect(await rulesOf(safe)).not.toContain(rule);
  });

  it.each(style)("%s (style, with --style only): %s", async (rule, danger, safe) => {
    expect(await rulesOf(danger, true)).toContain(rule);
    expect(await rulesOf(danger, false)).not.toContain(rule);
    expect(await rulesOf(safe, true)).not.toContain(rule);
  });

  it("every rule of the table has a case", () => {
    const tested = new Set([...cases, ...style].map(([rule]) => rule));
    const untested = Object.keys(RULES).filter(
      (r) =>
        !tested.has(r) && r !== "missing-down" && r !== "syntax" && r !== "expand-incompatible", // migrate_phases.test.ts
    );
    expect(untested).toEqual([]);
  });
});

describe("findings", () => {
  it("carry rule, severity, file:line, the lock and on what, why and the safe rewrite", async () => {
    const [f] = await lintMigrationFiles([
      migration(1, BASE_SCHEMA),
      migration(2, "-- widen\n\nALTER TABLE users ALTER COLUMN age TYPE bigint;"),
    ]);
    expect(f).toMatchObject({
      rule: "changing-column-type",
      severity: "error",
      file: "000002_case.up.sql",
      line: 3,
      lock: { mode: "ACCESS EXCLUSIVE", on: ["users"] },
      table: "users",
    });
    expect(f!.why).toMatch(/rewrites/);
    expect(f!.fix).toMatch(/new column/);
  });

  it("a foreign key locks both tables", async () => {
    const findings = await lintMigrationFiles([
      migration(1, BASE_SCHEMA),
      migration(
        2,
        "ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users (id);",
      ),
    ]);
    expect(findings.find((f) => f.rule === "adding-foreign-key-constraint")?.lock).toEqual({
      mode: "SHARE ROW EXCLUSIVE",
      on: ["orders", "users"],
    });
  });

  it("a DO block's statement is reported at its own line", async () => {
    const findings = await lintMigrationFiles([
      migration(1, BASE_SCHEMA),
      migration(2, "SELECT 1;\nDO $$\nBEGIN\n  ALTER TABLE users DROP COLUMN age;\nEND $$;"),
    ]);
    expect(findings.map((f) => [f.rule, f.line])).toEqual([["ban-drop-column", 4]]);
    expect(findings[0]!.message).toMatch(/in a DO block/);
  });

  it("a function body's DDL is a warning: it runs when called", async () => {
    const findings = await lintMigrationFiles([
      migration(1, BASE_SCHEMA),
      migration(
        2,
        "CREATE FUNCTION wipe() RETURNS void LANGUAGE plpgsql AS $$ BEGIN TRUNCATE users CASCADE; UPDATE users SET age = 0; END $$;",
      ),
    ]);
    expect(findings.map((f) => [f.rule, f.severity])).toEqual([
      ["ban-truncate-cascade", "warning"],
    ]);
  });
});

describe("new and existing tables", () => {
  it("CREATE TABLE IF NOT EXISTS of a table an earlier file created does not make it new", async () => {
    const again =
      "CREATE TABLE IF NOT EXISTS users (id bigint);\nCREATE INDEX users_age ON users (age);";
    expect(await rulesOf(again)).toContain("require-concurrent-index-creation");
    const fresh =
      "CREATE TABLE IF NOT EXISTS brand_new (id bigint);\nCREATE INDEX b ON brand_new (id);";
    expect(await rulesOf(fresh)).not.toContain("require-concurrent-index-creation");
  });

  it("lintMigrationFile alone: a table it does not create exists; IF NOT EXISTS is judged by the history given", async () => {
    const alone = await lintMigrationFile(migration(2, "CREATE INDEX i ON users (age);"));
    expect(alone.map((f) => [f.rule, f.severity, f.line, f.file])).toEqual([
      ["require-concurrent-index-creation", "error", 1, "000002_case.up.sql"],
    ]);
    const ifne = migration(
      2,
      "CREATE TABLE IF NOT EXISTS users (id bigint);\nCREATE INDEX i ON users (id);",
    );
    expect(await lintMigrationFile(ifne)).toEqual([]);
    const history = (await import("../../internal/migrate/lint/context.js")).emptyHistory();
    await lintMigrationFile(migration(1, BASE_SCHEMA), { history });
    expect((await lintMigrationFile(ifne, { history })).map((f) => f.rule)).toEqual([
      "require-concurrent-index-creation",
    ]);
  });
});

describe("markers", () => {
  it("-- migrate:lint-ignore skips the rule by its id or its old alias, and only that rule", async () => {
    for (const name of ["require-concurrent-index-creation", "index-not-concurrent"])
      expect(
        await rulesOf(`-- migrate:lint-ignore ${name}\nCREATE INDEX i ON users (age);`),
      ).toEqual([]);
    expect(
      await rulesOf("-- migrate:lint-ignore ban-drop-table\nCREATE INDEX i ON users (age);"),
    ).toEqual(["require-concurrent-index-creation"]);
  });

  it("a missing down file is reported", async () => {
    const findings = await lintMigrationFiles([migration(1, "SELECT 1;", false)]);
    expect(findings.map((f) => f.rule)).toEqual(["missing-down"]);
  });
});
