import type { FileContext } from "./context.js";
import { constraints, functionsCalled, names, typeSpec, type Node } from "./tree.js";

// Column definitions, in CREATE TABLE and ADD COLUMN alike: the type rules
// (squawk's prefer-* and ban-char-field) and what history records.

const SERIALS = new Set(["serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"]);

// Functions a DEFAULT may call without a rewrite (stable or immutable): the
// default is evaluated once and stored in the catalog. Anything else may be
// volatile, evaluated per row.
const NON_VOLATILE = new Set([
  "now",
  "statement_timestamp",
  "transaction_timestamp",
  "current_setting",
  "lower",
  "upper",
  "concat",
  "coalesce",
  "jsonb_build_object",
  "json_build_object",
  "to_jsonb",
  "array_fill",
  "make_interval",
  "make_date",
  "to_timestamp",
  "to_date",
  "md5",
  "length",
  "btrim",
]);

export function isSerial(def: Node): boolean {
  return SERIALS.has(typeSpec(def.typeName).name);
}

/** The functions of a DEFAULT that may be volatile (gen_random_uuid(), clock_timestamp(), random()). */
export function volatileCalls(expr: unknown): string[] {
  return functionsCalled(expr).filter((f) => !NON_VOLATILE.has(f.toLowerCase()));
}

/** The type rules for one column, and its type into history. */
export function declareColumn(ctx: FileContext, table: string, def: Node): void {
  const type = typeSpec(def.typeName);
  const col = `${table}.${String(def.colname)}`;
  ctx.history.columns.set(col, type);
  switch (type.name) {
    case "bpchar":
      ctx.add("ban-char-field", { message: `${col} is char(n)` });
      break;
    case "varchar":
      if (type.mods.length)
        ctx.add("prefer-text-field", { message: `${col} is varchar(${type.mods[0]})` });
      break;
    case "timestamp":
      ctx.add("prefer-timestamptz", { message: `${col} is timestamp without time zone` });
      break;
    case "int4":
    case "serial":
    case "serial4":
      ctx.add("prefer-bigint-over-int", { message: `${col} is a 32-bit integer` });
      break;
    case "int2":
    case "smallserial":
    case "serial2":
      ctx.add("prefer-bigint-over-smallint", { message: `${col} is a 16-bit integer` });
      break;
  }
  if (isSerial(def)) ctx.add("prefer-identity", { message: `${col} is ${type.name}` });
  for (const c of constraints(def)) {
    if (c.contype === "CONSTR_PRIMARY" || c.contype === "CONSTR_UNIQUE")
      addIndex(ctx, table, [String(def.colname)]);
  }
}

export function addIndex(ctx: FileContext, table: string, columns: string[]): void {
  const list = ctx.history.indexes.get(table) ?? [];
  list.push(columns);
  ctx.history.indexes.set(table, list);
}

/** Records a foreign key of `table`, checked for an index once the file is read. */
export function foreignKey(ctx: FileContext, table: string, columns: string[]): void {
  ctx.foreignKeys.push({ table, columns, line: ctx.line, leading: ctx.leading });
}

/** The column a CHECK (col IS NOT NULL) is about, if it is one. */
export function notNullCheckColumn(c: Node): string | undefined {
  const test = (c.raw_expr as Node | undefined)?.NullTest as Node | undefined;
  if (!test || test.nulltesttype !== "IS_NOT_NULL") return undefined;
  const ref = (test.arg as Node | undefined)?.ColumnRef as Node | undefined;
  return ref ? names(ref.fields).at(-1) : undefined;
}
