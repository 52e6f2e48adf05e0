import { SqlSyntaxError, splitStatements } from "../sql.js";
import { ExpandOptionError } from "./errors.js";

// EXPR and TYPE are SQL the operator writes. Each must be one expression
// (or one type) on its own: it is parsed alone, wrapped as it will be
// used, so that a fragment cannot close a parenthesis, end a statement or
// open a comment that swallows what follows. loadSqlParser() first.

/** An expression checked to parse as one, alone: `SELECT (EXPR)` with nothing else. */
export function expression(value: string, option: string): string {
  const select = single(value, option, `SELECT (${value})`, "an expression");
  const keys = Object.keys(select).filter((k) => k !== "limitOption" && k !== "op");
  const targets = select.targetList as { ResTarget?: { val?: Record<string, unknown> } }[];
  // `(a, b)` parses as a row of two: not one value.
  const row = targets?.[0]?.ResTarget?.val?.RowExpr as { row_format?: string } | undefined;
  const implicitRow = row?.row_format === "COERCE_IMPLICIT_CAST";
  if (keys.join() !== "targetList" || targets?.length !== 1 || implicitRow)
    throw new ExpandOptionError(`${option} ${shownValue(value)}: expected one expression`);
  return value.trim();
}

/** A type checked to parse as one, alone: `SELECT NULL::TYPE` with nothing else. */
export function typeName(value: string, option: string): string {
  const select = single(value, option, `SELECT NULL::${value}`, "a type");
  const target = (select.targetList as { ResTarget?: { val?: Record<string, unknown> } }[])[0];
  const cast = target?.ResTarget?.val?.TypeCast as { arg?: Record<string, unknown> } | undefined;
  const keys = Object.keys(select).filter((k) => k !== "limitOption" && k !== "op");
  if (keys.join() !== "targetList" || !(cast?.arg?.A_Const as { isnull?: boolean })?.isnull)
    throw new ExpandOptionError(
      `${option} ${shownValue(value)}: expected a type such as text, bigint or varchar(64)`,
    );
  return value.trim();
}

function single(value: string, option: string, sql: string, what: string): Record<string, unknown> {
  if (value.trim() === "") throw new ExpandOptionError(`${option} is empty: give ${what}`);
  if (value.includes("\0"))
    throw new ExpandOptionError(`${option}: a NUL byte: PostgreSQL would cut the file there`);
  // A comment line of the fragment would be a line of the file: it may not
  // pass for one of migrate's markers (phase, backfill, consent).
  if (/^[ \t]*--[ \t]*migrate:/m.test(value))
    throw new ExpandOptionError(
      `${option} ${shownValue(value)}: holds a -- migrate: marker line; drop that comment`,
    );
  let statements;
  try {
    statements = splitStatements(sql, option);
  } catch (err) {
    if (!(err instanceof SqlSyntaxError)) throw err;
    const why = err.message.replace(/^[^:]*:\d+: /, "");
    throw new ExpandOptionError(
      `${option} ${shownValue(value)}: not ${what} PostgreSQL parses (${why})`,
    );
  }
  const node = statements.length === 1 ? statements[0]!.node.SelectStmt : undefined;
  if (!node) throw new ExpandOptionError(`${option} ${shownValue(value)}: expected ${what} alone`);
  return node as Record<string, unknown>;
}

/** The value as a message shows it: quoted, escapes visible, cut when long. */
function shownValue(value: string): string {
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}…"` : text;
}
