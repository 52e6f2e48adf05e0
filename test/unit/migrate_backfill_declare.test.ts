// What a `-- migrate:backfill` line may stand above, and the range-limited
// UPDATE it becomes (backfill/declare.ts).
import { beforeAll, describe, expect, it } from "vitest";
import { analyse } from "../../internal/migrate/analyse.js";
import { findBackfills } from "../../internal/migrate/backfill/declare.js";
import { loadSqlParser, splitStatements } from "../../internal/migrate/sql.js";

beforeAll(loadSqlParser);

const fills = (text: string) => findBackfills(analyse(text, "f.up.sql"), "f.up.sql");

describe("a backfill", () => {
  it("is the UPDATE below the marker, with its options, after the file's other statements", () => {
    const [b, ...rest] = fills(
      "ALTER TABLE t ADD COLUMN b text;\n-- migrate:backfill batch=250 pause=50ms lock_timeout=2s\nUPDATE t SET b = a WHERE b IS NULL;\n",
    );
    expect(rest).toEqual([]);
    expect(b).toMatchObject({
      index: 1,
      table: '"t"',
      pending: "b IS NULL",
      options: { batch: 250, pauseMs: 50, lockTimeoutMs: 2000 },
    });
    expect(b!.statement.line).toBe(3);
  });

  it("defaults to batches of 1000, no pause, the migration's lock_timeout", () => {
    expect(fills("-- migrate:backfill\nUPDATE s.t SET b = a WHERE b IS NULL;")[0]).toMatchObject({
      table: '"s"."t"',
      options: { batch: 1000, pauseMs: 0 },
    });
  });

  it.each([
    ["b IS NULL AND a IS NOT NULL -- the rows left", "b IS NULL AND a IS NOT NULL"],
    ["b IS NULL OR b <> upper(a)", "b IS NULL OR b <> upper(a)"],
    ["b IS NULL AND (a = 'WHERE' OR a IN (SELECT x FROM u WHERE y))", null],
  ])("keeps the condition %j whole, ANDed with the key range", (where, pending) => {
    const [b] = fills(`-- migrate:backfill\nUPDATE t SET b = upper(a) WHERE ${where};`);
    if (pending) expect(b!.pending).toBe(pending);
    const sql = b!.batch('"id"', "'10'", "'20'");
    expect(sql).toMatch(/ AND "id" > '10' AND "id" <= '20'$/);
    const [first] = splitStatements(sql, "x");
    expect(first!.node.UpdateStmt).toBeDefined();
    expect(b!.batch('"id"', null, "'20'")).toMatch(/\) AND "id" <= '20'$/);
  });

  it.each([
    ["-- migrate:backfill\nDELETE FROM t WHERE a IS NULL;", /must be an UPDATE/],
    ["-- migrate:backfill\nUPDATE t SET b = a;", /needs a WHERE naming the rows still to fill/],
    ["-- migrate:backfill\nUPDATE t SET b = a WHERE b IS NULL RETURNING id;", /RETURNING/],
    ["-- migrate:backfill\nWITH x AS (SELECT 1) UPDATE t SET b = a WHERE b IS NULL;", /WITH/],
    ["-- migrate:backfill\nUPDATE ONLY t SET b = a WHERE b IS NULL;", /UPDATE ONLY/],
    [
      "-- migrate:backfill\nUPDATE t SET b = u.v FROM u WHERE u.id = t.id AND b IS NULL;",
      /UPDATE … FROM/,
    ],
    ["-- migrate:backfill\nUPDATE t AS x SET b = x.a WHERE x.b IS NULL;", /may not take an alias/],
    [
      "-- migrate:backfill\nUPDATE t SET b = a WHERE b IS NULL;\nALTER TABLE t ADD COLUMN c int;",
      /f.up.sql:3: only backfills may follow a backfill/,
    ],
    [
      "-- migrate:backfill batch=0\nUPDATE t SET b = a WHERE b IS NULL;",
      /batch=0: expected rows per batch/,
    ],
    ["-- migrate:backfill batch=abc\nUPDATE t SET b = a WHERE b IS NULL;", /batch=abc/],
    ["-- migrate:backfill batch=-5\nUPDATE t SET b = a WHERE b IS NULL;", /batch=-5/],
    [
      "-- migrate:backfill pause=soon\nUPDATE t SET b = a WHERE b IS NULL;",
      /pause=soon: expected a duration/,
    ],
    ["-- migrate:backfill lock_timeout=0s\nUPDATE t SET b = a WHERE b IS NULL;", /lock_timeout=0s/],
    ["-- migrate:backfill bacth=10\nUPDATE t SET b = a WHERE b IS NULL;", /unknown option "bacth"/],
    [
      "CREATE INDEX CONCURRENTLY i ON t (a);\n-- migrate:backfill\nUPDATE t SET b = a WHERE b IS NULL;",
      /cannot also hold statements that run outside one/,
    ],
  ])("refuses %j, naming the line", (text, message) => {
    expect(() => fills(text)).toThrow(message);
  });

  it("is read in any case and spacing, and prose that only begins like one is a comment", () => {
    expect(
      fills("-- Migrate : Backfill batch=10\nUPDATE t SET b = a WHERE b IS NULL;")[0],
    ).toMatchObject({
      options: { batch: 10 },
    });
    expect(
      fills("-- migrate: backfill is done later\nUPDATE t SET b = a WHERE b IS NULL;"),
    ).toEqual([]);
  });

  it("is only a marker line of the file itself, not one inside a string", () => {
    expect(fills("SELECT '\n-- migrate:backfill\n';\nUPDATE t SET b = a WHERE b IS NULL;")).toEqual(
      [],
    );
  });
});
