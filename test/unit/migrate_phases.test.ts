// Expand and contract: the phase line, what a phased `up` takes, and what an
// expand file may not do (lint/expand.ts).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { blocking, lintMigrationFiles } from "../../internal/migrate/lint/lint.js";
import { matchConsent, readMarkers } from "../../internal/migrate/lint/consent.js";
import { loadParsers } from "../../internal/migrate/lint/parser.js";
import { readPhase } from "../../internal/migrate/phase.js";
import { planSteps, type UpPhase } from "../../internal/migrate/plan.js";
import { readMigrations, type MigrationFile } from "../../internal/migrate/source.js";
import { BASE_SCHEMA, migration } from "../helpers/lint_fixture.js";

beforeAll(loadParsers);

describe("the phase line", () => {
  it("reads expand and contract VERSION; unmarked files have none", () => {
    expect(readPhase("-- migrate:phase expand\nALTER TABLE t ADD c int;", "f")).toEqual({
      kind: "expand",
    });
    expect(readPhase("--migrate:phase contract 20261207000001\n", "f")).toEqual({
      kind: "contract",
      expands: 20261207000001n,
    });
    expect(readPhase("ALTER TABLE t ADD c int;", "f")).toBeUndefined();
  });

  it("is read in any case and spacing, so a misspelt keyword cannot make a contract unmarked", () => {
    expect(readPhase("-- Migrate : Phase contract 7\n", "f")).toEqual({
      kind: "contract",
      expands: 7n,
    });
    expect(readPhase("--MIGRATE:PHASE Expand", "f")).toEqual({ kind: "expand" });
    expect(readPhase("-- migrate: phase one of the cleanup\nSELECT 1;", "f")).toBeUndefined();
  });

  it("is not read inside a string or a function body", () => {
    const text = "SELECT '\n-- migrate:phase expand\n';\nDO $$\n-- migrate:phase contract 1\n$$;";
    expect(readPhase(text, "f")).toBeUndefined();
  });

  it.each([
    [
      "-- migrate:phase expnad",
      /f:1: -- migrate:phase expnad: expected "expand" or "contract VERSION"/,
    ],
    ["-- migrate:phase", /expected "expand" or "contract VERSION"/],
    ["-- migrate:phase contract", /needs the version of the expand it completes/],
    ["-- migrate:phase contract abc", /needs the version/],
    ["-- migrate:phase expand now", /expected/],
    ["-- migrate:phase expand\n-- migrate:phase expand", /appears twice \(lines 1 and 2\)/],
  ])("refuses %j, naming file and line", (text, message) => {
    const read = readPhase(text, "f");
    expect(read && "problem" in read ? read.problem : "").toMatch(message);
  });

  describe("in a folder", () => {
    let dir: string;
    afterEach(() => rmSync(dir, { recursive: true, force: true }));
    const folder = (files: Record<string, string>) => {
      dir = mkdtempSync(join(tmpdir(), "phases-"));
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
      return dir;
    };

    it("gives each migration its phase", () => {
      const { migrations } = readMigrations(
        folder({
          "1_a.up.sql": "-- migrate:phase expand\nSELECT 1;",
          "2_a.up.sql": "-- migrate:phase contract 1\nSELECT 1;",
          "3_b.up.sql": "SELECT 1;",
        }),
      );
      expect(migrations.map((m) => m.phase)).toEqual([
        { kind: "expand" },
        { kind: "contract", expands: 1n },
        undefined,
      ]);
    });

    it.each([
      [{ "2_a.up.sql": "-- migrate:phase contract 1\n" }, /version 1, which is not in this folder/],
      [
        { "1_a.up.sql": "SELECT 1;", "2_a.up.sql": "-- migrate:phase contract 1\n" },
        /1_a is not marked -- migrate:phase expand/,
      ],
      [
        {
          "2_a.up.sql": "-- migrate:phase contract 3\n",
          "3_a.up.sql": "-- migrate:phase expand\n",
        },
        /which is not before it/,
      ],
      [{ "1_a.up.sql": "-- migrate:phase Expnd\n" }, /1_a.up.sql:1: .*expected "expand"/],
    ])("refuses a contract that names no earlier expand, or a misspelt phase", (files, message) => {
      expect(() => readMigrations(folder(files))).toThrow(message);
    });
  });
});

const file = (version: number, phase?: MigrationFile["phase"]): MigrationFile => ({
  ...migration(version, "SELECT 1;"),
  ...(phase ? { phase } : {}),
});
const E = { kind: "expand" } as const;
const C = (expands: number) => ({ kind: "contract", expands: BigInt(expands) }) as const;
const applied = (...files: MigrationFile[]) =>
  files.map((f) => ({ name: f.name, runOn: new Date(), checksum: "" }));

describe("a phased up", () => {
  const files = [file(1), file(2, E), file(3, E), file(4, C(2)), file(5, C(3)), file(6)];
  const up = (phase: UpPhase | undefined, done: MigrationFile[]) => {
    const { steps, held } = planSteps(files, applied(...done), {
      kind: "up",
      ...(phase ? { phase } : {}),
    });
    return { names: steps.map((s) => Number(s.migration.version)), held: held?.name };
  };

  it("without a phase takes everything, as before", () => {
    expect(up(undefined, []).names).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("expand takes expand files in order, stopping at the first other", () => {
    expect(up("expand", [files[0]!])).toEqual({ names: [2, 3], held: "000004_case" });
    expect(up("expand", [])).toEqual({ names: [], held: "000001_case" });
  });

  it("contract takes contracts whose expand is applied, stopping at the first other", () => {
    const done = files.slice(0, 3);
    expect(up("contract", done)).toEqual({ names: [4, 5], held: "000006_case" });
    expect(up("contract", [files[0]!])).toEqual({ names: [], held: "000002_case" });
  });

  it("start never takes a contract", () => {
    expect(up("start", [])).toEqual({ names: [1, 2, 3], held: "000004_case" });
  });

  it("start takes an unmarked file as it always did", () => {
    const mixed = [file(1, E), file(2), file(3, E)];
    expect(planSteps(mixed, [], { kind: "up", phase: "start" }).steps).toHaveLength(3);
  });

  it("counts within the phase, and names no hold when the count stopped it", () => {
    expect(up("expand", [files[0]!]).names).toEqual([2, 3]);
    const { steps, held } = planSteps(files, applied(files[0]!), {
      kind: "up",
      phase: "expand",
      count: 1,
    });
    expect(steps.map((s) => s.name)).toEqual(["000002_case"]);
    expect(held).toBeUndefined();
  });
});

describe("an expand file", () => {
  const expandFile = (sql: string) => ({ ...migration(2, sql), phase: E });
  const lint = async (sql: string) =>
    lintMigrationFiles(
      [
        migration(
          1,
          `${BASE_SCHEMA}\nCREATE VIEW v AS SELECT 1;
      CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';
      CREATE TYPE mood AS ENUM ('ok');`,
        ),
        expandFile(sql),
      ],
      { only: new Set(["000002_case"]) },
    );

  it.each([
    "ALTER TABLE users DROP COLUMN email;",
    "ALTER TABLE users RENAME COLUMN email TO mail;",
    "ALTER TABLE users RENAME TO people;",
    "DROP TABLE orders;",
    "ALTER TABLE users ALTER COLUMN age TYPE bigint;",
    "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
    "ALTER TABLE users ADD COLUMN nick text NOT NULL;",
    "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
    "ALTER TABLE users ADD CONSTRAINT age_ok CHECK (age > 0);",
    "ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id);",
    "DROP VIEW v;",
    "DROP FUNCTION f();",
    "DROP TYPE mood;",
    "ALTER VIEW v RENAME TO w;",
    "ALTER FUNCTION f() RENAME TO g;",
    "ALTER TABLE users SET SCHEMA archive;",
    "ALTER TYPE mood RENAME VALUE 'ok' TO 'fine';",
    "ALTER TABLE users ALTER COLUMN age DROP DEFAULT;",
    "ALTER TABLE users DROP CONSTRAINT users_pkey;",
    "ALTER TABLE users ENABLE ROW LEVEL SECURITY;",
    "CREATE UNIQUE INDEX CONCURRENTLY users_email ON users (email);",
    "REVOKE SELECT ON users FROM PUBLIC;",
    "DROP AGGREGATE myagg(int);",
  ])("refuses %s, and no consent lets it through", async (sql) => {
    const findings = await lint(sql);
    const refused = findings.filter((f) => f.rule === "expand-incompatible");
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ severity: "error", file: "000002_case.up.sql", line: 1 });
    const consented = `-- migrate:allow expand-incompatible "sure"\n${sql}`;
    const check = matchConsent(expandFile(consented), await lint(consented));
    expect(check.errors.join()).toMatch(/no consent makes an expand break the previous release/);
    expect(check.needed.map((n) => n.rule)).toContain("expand-incompatible");
  });

  it.each([
    "ALTER TABLE users ADD COLUMN nick text;",
    "ALTER TABLE users ADD COLUMN flag boolean NOT NULL DEFAULT false;",
    "ALTER TABLE users ADD CONSTRAINT age_ok CHECK (age > 0) NOT VALID;",
    "ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;",
    "CREATE TABLE archive (id bigint PRIMARY KEY);\nDROP TABLE archive;",
    "CREATE OR REPLACE FUNCTION sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.name := NEW.email; RETURN NEW; END $$;",
    "ALTER TYPE mood ADD VALUE 'meh';",
    "ALTER TABLE users ALTER COLUMN age SET DEFAULT 0;",
    "CREATE INDEX CONCURRENTLY users_age ON users (age);",
    "CREATE TABLE fresh (id int);\nCREATE UNIQUE INDEX fresh_id ON fresh (id);",
    "GRANT SELECT ON users TO PUBLIC;",
    "CREATE TABLE n (v int DEFAULT 0, CONSTRAINT n_v CHECK (v > 0));\nALTER TABLE n ALTER COLUMN v DROP DEFAULT;\nALTER TABLE n DROP CONSTRAINT n_v;",
  ])("accepts the additive %s", async (sql) => {
    const findings = await lint(sql);
    expect(findings.filter((f) => f.rule === "expand-incompatible")).toEqual([]);
  });

  it("the same statements in a contract or an unmarked file need only the usual consent", async () => {
    const contract = { ...migration(2, "ALTER TABLE users DROP COLUMN email;"), phase: C(1) };
    const findings = await lintMigrationFiles([migration(1, BASE_SCHEMA), contract], {
      only: new Set(["000002_case"]),
    });
    expect(findings.map((f) => f.rule)).toEqual(["ban-drop-column"]);
    expect(blocking(findings)).toHaveLength(1);
    expect(readMarkers('-- migrate:allow ban-drop-column "gone"', "f").errors).toEqual([]);
  });
});
