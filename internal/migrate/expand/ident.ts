import { createHash } from "node:crypto";
import { ExpandOptionError } from "./errors.js";

// Names as the catalog spells them (case and all), always emitted
// double-quoted: `--table Users` means "Users", not users.

/** A table, with its schema when one was given (`schema.table`). */
export interface TableName {
  schema?: string;
  name: string;
}

// PostgreSQL keeps NAMEDATALEN - 1 bytes of a name and silently cuts the rest.
const MAX_NAME_BYTES = 63;

/**
 * A column (or schema, or table) name checked: not empty, at most 63 bytes,
 * no control character (names are also echoed in the files' comments, where
 * a line break would end the comment), no space around it.
 */
export function identifier(value: string, option: string): string {
  const what = `${option} ${JSON.stringify(value)}`;
  if (value === "") throw new ExpandOptionError(`${option} is empty: give a name`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value))
    throw new ExpandOptionError(`${what}: a name may not hold a NUL or another control character`);
  if (value.trim() !== value)
    throw new ExpandOptionError(`${what}: space before or after the name`);
  if (Buffer.byteLength(value, "utf8") > MAX_NAME_BYTES)
    throw new ExpandOptionError(
      `${what}: longer than ${MAX_NAME_BYTES} bytes, which PostgreSQL would cut`,
    );
  return value;
}

/** `table` or `schema.table`: a dot always separates (a name holding a dot is refused). */
export function tableName(value: string, option: string): TableName {
  const parts = value.split(".");
  if (parts.length > 2)
    throw new ExpandOptionError(
      `${option} ${JSON.stringify(value)}: give table or schema.table (a name may not hold a dot)`,
    );
  const [first, second] = parts.map((p) => identifier(p, option));
  return second === undefined ? { name: first! } : { schema: first!, name: second };
}

/** A name as a quoted identifier: `a"b` → `"a""b"`. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The table quoted, schema-qualified when it was given so. */
export function quoteTable(table: TableName): string {
  return table.schema === undefined
    ? quoteIdent(table.name)
    : `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
}

/** An object beside the table (its function goes in the table's schema), quoted. */
export function besideTable(table: TableName, name: string): string {
  return quoteTable({ ...table, name });
}

/**
 * A name made of `parts` joined by `_`, kept within 63 bytes: a longer one
 * is cut (on a character boundary) and ends with a hash of the whole, so
 * that two long names stay apart.
 */
export function derivedName(...parts: string[]): string {
  const whole = parts.join("_");
  if (Buffer.byteLength(whole, "utf8") <= MAX_NAME_BYTES) return whole;
  const hash = createHash("sha256").update(whole).digest("hex").slice(0, 8);
  let head = "";
  for (const ch of whole) {
    if (Buffer.byteLength(head + ch, "utf8") > MAX_NAME_BYTES - hash.length - 1) break;
    head += ch;
  }
  return `${head}_${hash}`;
}
