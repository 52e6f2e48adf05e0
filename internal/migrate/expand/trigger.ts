import { ExpandOptionError } from "./errors.js";
import { besideTable, quoteIdent, quoteTable, type TableName } from "./ident.js";

// What every kind's trigger needs: where its function lives, how the
// operator's expressions see the row being written, the statements that
// create and drop the pair, and the backfill marker.

/** A table's sync trigger and its function (same name; the function in the table's schema). */
export interface TriggerNames {
  table: TableName;
  /** The trigger's and the function's name, unquoted (see derivedName). */
  name: string;
}

/**
 * The row being written as a FROM item named like the table, so that an
 * expression written for the backfill's UPDATE (`username`, or
 * `users.username`) reads the same columns inside the trigger.
 */
export function rowSource(table: TableName): string {
  return `(SELECT NEW.*) AS ${quoteIdent(table.name)}`;
}

/** Refuses a table the trigger's row source cannot be named after: PL/pgSQL's NEW and OLD. */
export function checkTriggerTable(table: TableName, option: string): void {
  if (table.name === "new" || table.name === "old")
    throw new ExpandOptionError(
      `${option} ${table.name}: a table named ${table.name} clashes with the trigger's ${table.name.toUpperCase()} row; rename it first`,
    );
}

/** A dollar-quote tag that no fragment holds, so that none can end the function's body. */
export function dollarTag(base: string, fragments: string[]): string {
  for (let i = 0; ; i++) {
    const tag = i === 0 ? `$${base}$` : `$${base}_${i}$`;
    if (!fragments.some((f) => f.includes(tag.slice(0, -1)))) return tag;
  }
}

/** CREATE FUNCTION … RETURNS trigger with `body` (PL/pgSQL, from its first line to END). */
export function createFunction(t: TriggerNames, body: string, tag: string): string {
  return [
    `CREATE FUNCTION ${besideTable(t.table, t.name)}() RETURNS trigger`,
    `LANGUAGE plpgsql AS ${tag}`,
    // A column named like a PL/pgSQL variable (found, new_written…) reads as the column.
    "#variable_conflict use_column",
    body,
    `${tag};`,
  ].join("\n");
}

/** CREATE TRIGGER, BEFORE INSERT and BEFORE UPDATE (OF `columns` when given), for each row. */
export function createTrigger(t: TriggerNames, columns?: string[]): string {
  const of = columns ? ` OF ${columns.map(quoteIdent).join(", ")}` : "";
  return [
    `CREATE TRIGGER ${quoteIdent(t.name)}`,
    `  BEFORE INSERT OR UPDATE${of} ON ${quoteTable(t.table)}`,
    `  FOR EACH ROW EXECUTE FUNCTION ${besideTable(t.table, t.name)}();`,
  ].join("\n");
}

/** DROP TRIGGER then DROP FUNCTION (IF EXISTS in the down files). */
export function dropTrigger(t: TriggerNames, ifExists: boolean): string[] {
  const ie = ifExists ? "IF EXISTS " : "";
  return [
    `DROP TRIGGER ${ie}${quoteIdent(t.name)} ON ${quoteTable(t.table)};`,
    `DROP FUNCTION ${ie}${besideTable(t.table, t.name)}();`,
  ];
}

/**
 * A backfill statement under its marker: `UPDATE … SET … WHERE predicate`,
 * the predicate selecting exactly the rows still to fill (a row the SET
 * has run on no longer matches). `migrate up` runs it in key-range batches
 * (backfill/run.ts); psql or golang-migrate would run it whole.
 */
export function backfill(table: TableName, set: string[], where: string): string {
  return [
    "-- migrate:backfill",
    `UPDATE ${quoteTable(table)}`,
    `  SET ${set.join(",\n      ")}`,
    `  WHERE ${where};`,
  ].join("\n");
}
