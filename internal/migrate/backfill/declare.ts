import pg from "pg";
import { parseDurationMs } from "../../conf/duration.js";
import { quote, ScriptRefusedError, type Script } from "../analyse.js";
import { markerLines } from "../lint/marker.js";
import { scanTokens, splitStatements, type Statement } from "../sql.js";

// A backfill is an UPDATE of a migration file marked to run in batches:
//   -- migrate:backfill batch=1000 pause=100ms lock_timeout=2s
//   UPDATE users SET nick = username WHERE nick IS NULL;
// Its WHERE names the rows still to fill; the runner (run.ts) walks the
// table's primary key in ranges, each range its own transaction, and
// records the migration only once no row matches. Without the runner (psql,
// golang-migrate) the file is plain SQL and the UPDATE runs whole.

/** How a backfill runs: rows per batch, the pause between batches, each batch's lock_timeout. */
export interface BackfillOptions {
  batch: number;
  pauseMs: number;
  /** Undefined: the migration's own lock_timeout. */
  lockTimeoutMs?: number;
}

/** One backfill of a file, ready to run in ranges of its table's primary key. */
export interface Backfill {
  /** Its statement's index in the script. */
  index: number;
  statement: Statement;
  /** The table, quoted (schema-qualified when the file qualifies it). */
  table: string;
  /** The WHERE condition as written: the rows still to fill. */
  pending: string;
  options: BackfillOptions;
  /** The UPDATE limited to `key > lower AND key <= upper` (both SQL literals; lower may be null). */
  batch(key: string, lower: string | null, upper: string): string;
}

const DEFAULTS: BackfillOptions = { batch: 1000, pauseMs: 0 };
const MAX_BATCH = 1_000_000;

/**
 * The backfills of `script` (the text of `file`): statements led by a
 * `-- migrate:backfill` line. Refused, naming the line: a backfill that is
 * not a plain single-table UPDATE with a WHERE, one followed by a statement
 * that is not a backfill, a file that cannot run its other statements in one
 * transaction, an unknown or out-of-range option.
 */
export function findBackfills(script: Script, file: string): Backfill[] {
  const found: Backfill[] = [];
  for (const [index, st] of script.statements.entries()) {
    const markers = markerLines(st.leading, "backfill");
    if (markers.length === 0) {
      if (found.length > 0)
        throw new ScriptRefusedError(
          file,
          st.line,
          "only backfills may follow a backfill: they run after the file's other statements have committed; move this statement above the first -- migrate:backfill",
        );
      continue;
    }
    if (markers.length > 1)
      throw new ScriptRefusedError(
        file,
        st.line,
        "two -- migrate:backfill lines above one statement",
      );
    found.push(backfill(index, st, file, options(markers[0]!.rest, file, st.line)));
  }
  if (found.length > 0 && (!script.transactional || script.ownTransactions))
    throw new ScriptRefusedError(
      file,
      found[0]!.statement.line,
      "a file with a backfill runs its other statements in one transaction: it cannot also hold statements that run outside one (CONCURRENTLY, VACUUM, BEGIN … COMMIT); put those in a migration of their own",
    );
  return found;
}

function options(rest: string, file: string, line: number): BackfillOptions {
  const o: BackfillOptions = { ...DEFAULTS };
  const refuse = (why: string) => new ScriptRefusedError(file, line, `-- migrate:backfill: ${why}`);
  for (const word of rest.trim().split(/\s+/).filter(Boolean)) {
    const [name, value = ""] = word.split("=", 2) as [string, string?];
    if (name === "batch") {
      if (!/^[0-9]{1,7}$/.test(value) || Number(value) < 1 || Number(value) > MAX_BATCH)
        throw refuse(`batch=${value.slice(0, 20)}: expected rows per batch, 1 to ${MAX_BATCH}`);
      o.batch = Number(value);
    } else if (name === "pause" || name === "lock_timeout") {
      const ms = parseDurationMs(value);
      if (ms === undefined || ms < 0 || ms > 3_600_000 || (name === "lock_timeout" && ms < 1))
        throw refuse(
          `${name}=${value.slice(0, 20)}: expected a duration such as 100ms or 2s (at most 1h)`,
        );
      if (name === "pause") o.pauseMs = ms;
      else o.lockTimeoutMs = ms;
    } else
      throw refuse(
        `unknown option ${JSON.stringify(name.slice(0, 30))} (options: batch=N, pause=DURATION, lock_timeout=DURATION)`,
      );
  }
  return o;
}

type Node = Record<string, unknown>;

function backfill(index: number, st: Statement, file: string, options: BackfillOptions): Backfill {
  const refuse = (why: string) =>
    new ScriptRefusedError(file, st.line, `-- migrate:backfill: ${why}`);
  const update = st.node.UpdateStmt as Node | undefined;
  if (!update) throw refuse("the statement below it must be an UPDATE");
  if (update.withClause)
    throw refuse("an UPDATE with WITH is not batched: write the CTE as a subquery");
  // Its WHERE is also counted alone against the table (rows left to fill):
  // it may name only the table's own columns.
  if (update.fromClause)
    throw refuse("UPDATE … FROM is not batched: fill from a subquery in SET (… = (SELECT …))");
  if ((update.relation as Node | undefined)?.alias)
    throw refuse("the UPDATE's table may not take an alias: name its columns plainly");
  if (update.returningList)
    throw refuse("RETURNING has nowhere to go in a batched UPDATE: remove it");
  if (!update.whereClause)
    throw refuse(
      "the UPDATE needs a WHERE naming the rows still to fill (e.g. WHERE new_col IS NULL)",
    );
  const relation = update.relation as Node;
  // The parse tree leaves false out: a plain table reference inherits.
  if (relation.inh !== true) throw refuse("UPDATE ONLY is not batched");
  const table = [relation.schemaname, relation.relname]
    .filter((p): p is string => typeof p === "string")
    .map(quote)
    .join(".");
  const { head, pending } = splitAtWhere(st.sql, () => refuse("its WHERE could not be found"));
  const batch = (key: string, lower: string | null, upper: string) =>
    `${head} (${pending})${lower === null ? "" : ` AND ${key} > ${lower}`} AND ${key} <= ${upper}`;
  // The rewrite must keep the file's condition as it is, ANDed with the
  // range (the parser flattens a condition that is itself an AND).
  const check = splitStatements(batch('"k"', "'0'", "'1'"), file)[0]?.node.UpdateStmt as Node;
  const args = ((check?.whereClause as Node)?.BoolExpr as Node)?.args as Node[] | undefined;
  const own = update.whereClause as Node;
  const ownAnd = own.BoolExpr as Node | undefined;
  const expected = ownAnd?.boolop === "AND_EXPR" ? (ownAnd.args as Node[]) : [own];
  if (args?.length !== expected.length + 2 || strip(args.slice(0, -2)) !== strip(expected))
    throw refuse(
      "its WHERE could not be limited to a range of keys; write it as a plain condition",
    );
  return { index, statement: st, table, pending, options, batch };
}

// The UPDATE's own WHERE is the one keyword WHERE outside parentheses; what
// follows it, less trailing comments, is the condition.
function splitAtWhere(sql: string, fail: () => Error): { head: string; pending: string } {
  const bytes = Buffer.from(sql, "utf8");
  const tokens = scanTokens(sql).filter((t) => !t.tokenName.endsWith("_COMMENT"));
  let depth = 0;
  const wheres: number[] = [];
  for (const [i, t] of tokens.entries()) {
    if (t.text === "(" || t.text === "[") depth++;
    else if (t.text === ")" || t.text === "]") depth--;
    else if (depth === 0 && t.keywordKind > 0 && t.text.toUpperCase() === "WHERE") wheres.push(i);
  }
  if (wheres.length !== 1) throw fail();
  const where = tokens[wheres[0]!]!;
  const last = tokens.at(-1)!;
  return {
    head: bytes.subarray(0, where.end).toString("utf8"),
    pending: bytes.subarray(tokens[wheres[0]! + 1]!.start, last.end).toString("utf8"),
  };
}

/** A parse tree without positions, for comparing two parses of the same condition. */
function strip(node: unknown): string {
  return JSON.stringify(node, (k, v: unknown) => (k === "location" ? undefined : v));
}

/** A SQL literal of a key read back as text (the column's type applies on comparison). */
export const literal = (text: string): string => pg.escapeLiteral(text);
