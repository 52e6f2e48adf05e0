import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { analyse, ScriptRefusedError } from "../../internal/migrate/analyse.js";
import { MigrationSourceError, readMigrations } from "../../internal/migrate/source.js";
import {
  loadSqlParser,
  rememberingSplit,
  splitStatements,
  SqlSyntaxError,
} from "../../internal/migrate/sql.js";

const dirs: string[] = [];
function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "kbts-unit-migrations-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

beforeAll(loadSqlParser);
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("reading a folder as golang-migrate does", () => {
  it("pairs by version, keeps the up file's title, ignores what is no migration", () => {
    const dir = folder({
      "10_ten.up.sql": "SELECT 10;",
      "2_two-v2.0.up.sql": "SELECT 2;",
      "2_undo_two.down.sql": "",
      "README.md": "",
      "10_ten.up.sql.orig": "",
    });
    const { migrations, ignored } = readMigrations(dir);
    expect(migrations.map((m) => [m.name, m.version, m.downPath !== undefined])).toEqual([
      ["2_two-v2.0", 2n, true],
      ["10_ten", 10n, false],
    ]);
    expect(migrations[0]!.down).toBe("");
    expect(ignored).toEqual(["10_ten.up.sql.orig", "README.md"]);
  });

  it("refuses a title that would break the record's quoting", () => {
    const dir = folder({ "1_it's.up.sql": "" });
    expect(() => readMigrations(dir)).toThrow(MigrationSourceError);
  });
});

describe("how a file runs", () => {
  it("an empty or comment-only file is a no-op in a transaction", () => {
    expect(analyse("", "f")).toEqual({ statements: [], transactional: true, indexes: [] });
    expect(analyse("-- nothing\n", "f").statements).toEqual([]);
  });

  it("concurrent index statements run outside a transaction, with their targets", () => {
    const script = analyse(
      [
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ix ON app.t (a);",
        "DROP INDEX CONCURRENTLY IF EXISTS old_ix;",
        "REINDEX INDEX CONCURRENTLY other_ix;",
      ].join("\n"),
      "f",
    );
    expect(script.transactional).toBe(false);
    expect(script.indexes).toEqual([
      { table: '"app"."t"', creates: "ix" },
      { index: '"old_ix"' },
      { index: '"other_ix"' },
    ]);
  });

  it("an unnamed concurrent build is refused: a failed one could not be found again", () => {
    expect(() => analyse("SELECT 1;\nCREATE INDEX CONCURRENTLY ON t (a);\n", "f.sql")).toThrow(
      /^f\.sql:2: CREATE INDEX CONCURRENTLY needs an index name/,
    );
  });

  it.each([
    ["VACUUM t", false],
    ["REINDEX SCHEMA s", false],
    ["REINDEX TABLE t", true],
    ["CLUSTER", false],
    ["CLUSTER t USING ix", true],
    ["ALTER TABLE p DETACH PARTITION c CONCURRENTLY", false],
    ["ALTER TABLE p DETACH PARTITION c", true],
    ["CREATE TABLE t (id int)", true],
  ])("%s runs in a transaction: %s", (sql, transactional) => {
    expect(analyse(sql, "f").transactional).toBe(transactional);
  });

  it("a file wrapped in BEGIN … COMMIT may not hold what cannot run in a transaction", () => {
    expect(() =>
      analyse(
        "BEGIN;\nCREATE TABLE p (id int);\nCREATE INDEX CONCURRENTLY ix ON p (id);\nCOMMIT;\n",
        "f.sql",
      ),
    ).toThrow(/^f\.sql:3: this statement cannot run in a transaction, but the file is wrapped/);
  });

  it("a whole-file BEGIN … COMMIT is unwrapped; any other transaction control is refused with its line", () => {
    expect(analyse("BEGIN;\nSELECT 1;\nCOMMIT;\n", "f").statements.map((s) => s.sql)).toEqual([
      "SELECT 1",
    ]);
    expect(() => analyse("SELECT 1;\nSAVEPOINT a;\n", "f.sql")).toThrow(ScriptRefusedError);
    expect(() => analyse("SELECT 1;\nSAVEPOINT a;\n", "f.sql")).toThrow(/^f\.sql:2: /);
    expect(() => analyse("BEGIN;\nSELECT 1;\nROLLBACK;\n", "f.sql")).toThrow(
      /^f\.sql:1: transaction control \(BEGIN\)/,
    );
  });
});

describe("a file read twice by one command", () => {
  it("is parsed once: the same statements as splitStatements; a syntax error each time, naming its file", () => {
    const split = rememberingSplit();
    const text = "-- lead\nCREATE TABLE t (a int);\nCREATE INDEX ON t (a);\n";
    const first = split(text, "1_a.up.sql");
    expect(first).toEqual(splitStatements(text, "1_a.up.sql"));
    expect(split(text, "2_b.up.sql")).toBe(first);
    expect(analyse(text, "1_a.up.sql", "migration", split).statements).toBe(first);
    expect(rememberingSplit()(text, "1_a.up.sql")).not.toBe(first);
    for (const file of ["3_c.up.sql", "4_d.up.sql"])
      expect(() => split("SELECT 1;\nSELEC 2;\n", file)).toThrow(
        expect.objectContaining({ name: SqlSyntaxError.name, file, line: 2 }),
      );
  });
});

describe("files that manage their own transactions", () => {
  it("run as written under transactions=file; blocks must close and not nest", () => {
    const script = analyse("SELECT 1;\nBEGIN;\nSELECT 2;\nCOMMIT;\n", "f.sql", "file");
    expect(script).toMatchObject({ transactional: false, ownTransactions: true });
    expect(script.statements.map((s) => s.sql)).toEqual([
      "SELECT 1",
      "BEGIN",
      "SELECT 2",
      "COMMIT",
    ]);
    // No transaction control, or a file wrapped whole: still one transaction with the record.
    expect(analyse("SELECT 1;\n", "f.sql", "file").transactional).toBe(true);
    expect(analyse("BEGIN;\nSELECT 1;\nCOMMIT;\n", "f.sql", "file").transactional).toBe(true);
    expect(() => analyse("SELECT 1;\nBEGIN;\nSELECT 2;\n", "f.sql", "file")).toThrow(
      /^f\.sql:2: the transaction opened here is never closed/,
    );
    expect(() =>
      analyse("BEGIN;\nSELECT 1;\nBEGIN;\nCOMMIT;\nSELECT 2;\n", "f.sql", "file"),
    ).toThrow(/^f\.sql:3: BEGIN inside the transaction opened at line 1/);
    expect(() => analyse("SELECT 1;\nBEGIN;\nSELECT 2;\nCOMMIT;\n", "f.sql")).toThrow(
      /--transactions=file/,
    );
  });
});

describe("consent markers and checksums", () => {
  it("a file without a marker keeps the plain SHA-256 of its text; marker lines do not count", async () => {
    const { createHash } = await import("node:crypto");
    const text = "-- migrate:allowance is not a marker\nCREATE TABLE t (a int);\n";
    const dir = folder({
      "1_a.up.sql": text,
      "2_b.up.sql": `-- migrate:allow drop-table "kept for the record"\n${text}`,
    });
    const [a, b] = readMigrations(dir).migrations;
    expect(a!.checksum).toBe(createHash("sha256").update(text).digest("hex"));
    expect(b!.checksum).toBe(a!.checksum);
  });
});
