import { ExpandOptionError } from "./errors.js";
import { expression, typeName } from "./fragment.js";
import { derivedName, identifier, quoteIdent, tableName } from "./ident.js";
import { distinctColumns, one, type ExpandValues, type Kind } from "./kind.js";
import { checkTriggerTable } from "./trigger.js";
import { twoWayPhases } from "./two_way.js";

/**
 * split-column: new columns (`--into NEW=EXPR`, or `NEW:TYPE=EXPR`; the type
 * defaults to --old-type), each EXPR in terms of the old column; --join
 * rebuilds the old column from the new ones for the new release's writes.
 */
export const splitColumn: Kind = {
  name: "split-column",
  required: ["table", "column", "into", "join", "old-type"],
  optional: [],
  build(values) {
    const table = tableName(one(values, "table"), "--table");
    checkTriggerTable(table, "--table");
    const old = identifier(one(values, "column"), "--column");
    const oldType = typeName(one(values, "old-type"), "--old-type");
    const into = intoSpecs(values).map((spec) => parseInto(spec, oldType));
    if (into.length < 2)
      throw new ExpandOptionError(
        "--into given once: a split makes two columns or more (--into NEW1=EXPR1 --into NEW2=EXPR2); to convert one column, use change-type",
      );
    distinctColumns([
      ["--column", old],
      ...into.map((i): [string, string] => ["--into", i.column]),
    ]);
    const join = expression(one(values, "join"), "--join");
    return twoWayPhases({
      table,
      name: derivedName(table.name, into[0]!.column, "sync"),
      old,
      news: into,
      back: join,
      oldType,
      summary: [
        `split ${quoteIdent(old)} into ${into.map((i) => quoteIdent(i.column)).join(", ")}`,
      ],
    });
  },
};

function intoSpecs(values: ExpandValues): string[] {
  const v = values.into;
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

// NEW=EXPR or NEW:TYPE=EXPR: the name ends at the first `:` or `=`, the type at the next `=`.
function parseInto(spec: string, oldType: string): { column: string; type: string; from: string } {
  const m = /^([^:=]*)(?::([^=]*))?=([\s\S]*)$/.exec(spec);
  if (!m)
    throw new ExpandOptionError(
      `--into ${JSON.stringify(spec)}: expected NEW=EXPR or NEW:TYPE=EXPR (EXPR in terms of the old column)`,
    );
  const column = identifier(m[1]!, "--into");
  return {
    column,
    type: m[2] === undefined ? oldType : typeName(m[2], `--into ${column}:TYPE`),
    from: expression(m[3]!, `--into ${column}=EXPR`),
  };
}
