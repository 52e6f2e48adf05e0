import { identifier, quoteIdent, quoteTable, tableName, type TableName } from "./ident.js";
import { distinctColumns, one, type ExpandValues, type Phases } from "./kind.js";
import { checkTriggerTable } from "./trigger.js";
import {
  backfill,
  createFunction,
  createTrigger,
  dollarTag,
  dropTrigger,
  rowSource,
  type TriggerNames,
} from "./trigger.js";

// The sync shared by rename-column, change-type and split-column: one old
// column, one or more new ones, an expression for each new column in terms
// of the row (the old column), and one rebuilding the old column from the
// new ones.

export interface TwoWay extends TriggerNames {
  table: TableName;
  old: string;
  oldType: string;
  /** Each new column, its type, and its value computed from the row's old column. */
  news: { column: string; type: string; from: string }[];
  /** The old column's value computed from the row's new columns. */
  back: string;
}

// Types without an equality operator: IS DISTINCT FROM cannot compare them
// (json → jsonb is a common change), so their text is compared.
const NO_EQUALITY =
  /^\s*(pg_catalog\s*\.\s*)?"?(json|xml|point|line|lseg|box|path|polygon|circle)"?\s*(\[|$)/i;

/** `a IS DISTINCT FROM b` for a value of `type`, by its text where the type has no `=`. */
function differs(a: string, b: string, type: string): string {
  return NO_EQUALITY.test(type)
    ? `${a}::text IS DISTINCT FROM ${b}::text`
    : `${a} IS DISTINCT FROM ${b}`;
}

/**
 * The function keeping both sides in step, for writes from either release:
 * a side is written when an INSERT gives it a value, or an UPDATE changes
 * it. The new side written (the new release's write, or a write to both:
 * the new side wins) sets the old column from it; the old side written
 * alone (the previous release) sets the new columns from it. A side already
 * in step with the other is left alone, so that a backfill of one side
 * never rewrites the other through a lossy round trip.
 */
export function twoWayFunction(s: TwoWay): string {
  const src = rowSource(s.table);
  const old = `NEW.${quoteIdent(s.old)}`;
  const news = s.news.map((n) => `NEW.${quoteIdent(n.column)}`);
  const any = (parts: string[]) => parts.join(" OR ");
  // Compared as the column will hold it: the expression cast to its type.
  const newOutOfStep = any(
    s.news.map((n, i) => differs(news[i]!, `(${n.from})::${n.type}`, n.type)),
  );
  const oldOutOfStep = differs(old, `(${s.back})::${s.oldType}`, s.oldType);
  const body = [
    "DECLARE",
    "  new_written boolean;",
    "  old_written boolean;",
    "BEGIN",
    "  IF TG_OP = 'INSERT' THEN",
    `    new_written := ${any(news.map((n) => `${n} IS NOT NULL`))};`,
    `    old_written := ${old} IS NOT NULL;`,
    "  ELSE",
    `    new_written := ${any(s.news.map((n, i) => differs(news[i]!, `OLD.${quoteIdent(n.column)}`, n.type)))};`,
    `    old_written := ${differs(old, `OLD.${quoteIdent(s.old)}`, s.oldType)};`,
    "  END IF;",
    "  IF new_written THEN",
    `    IF (SELECT ${newOutOfStep} FROM ${src}) THEN`,
    `      ${old} := (SELECT (${s.back}) FROM ${src});`,
    "    END IF;",
    "  ELSIF old_written THEN",
    `    IF (SELECT ${oldOutOfStep} FROM ${src}) THEN`,
    `      SELECT ${s.news.map((n) => `(${n.from})`).join(", ")} INTO ${news.join(", ")} FROM ${src};`,
    "    END IF;",
    "  END IF;",
    "  RETURN NEW;",
    "END",
  ].join("\n");
  return createFunction(s, body, dollarTag("sync", [s.back, ...s.news.map((n) => n.from)]));
}

/** The function and its trigger, fired by inserts and by updates of either side. */
export function createTwoWay(s: TwoWay): string[] {
  return [twoWayFunction(s), createTrigger(s, [s.old, ...s.news.map((n) => n.column)])];
}

export const dropTwoWay = dropTrigger;

/**
 * Fills the new columns of the rows no write has put in step: every new
 * column NULL while the old value maps to something.
 */
export function backfillNew(s: TwoWay): string {
  const empty = s.news.map((n) => `${quoteIdent(n.column)} IS NULL`).join(" AND ");
  const maps = s.news.map((n) => `(${n.from}) IS NOT NULL`).join(" OR ");
  return backfill(
    s.table,
    s.news.map((n) => `${quoteIdent(n.column)} = (${n.from})`),
    `${empty} AND (${maps})`,
  );
}

/** Refills the re-added old column from the new ones (the contract's down). */
export function backfillOld(s: TwoWay): string {
  const old = quoteIdent(s.old);
  return backfill(s.table, [`${old} = (${s.back})`], `${old} IS NULL AND (${s.back}) IS NOT NULL`);
}

/** The four files of a two-way change: new columns beside the old, then the old dropped. */
export function twoWayPhases(s: TwoWay & { summary: string[] }): Phases {
  const table = quoteTable(s.table);
  const newColumns = s.news.map((n) => ({ name: quoteIdent(n.column), type: n.type }));
  const old = quoteIdent(s.old);
  return {
    summary: s.summary,
    expandUp: [
      `ALTER TABLE ${table}\n${newColumns.map((c) => `  ADD COLUMN ${c.name} ${c.type}`).join(",\n")};`,
      ...createTwoWay(s),
      backfillNew(s),
    ],
    expandDown: [
      ...dropTwoWay(s, true),
      `ALTER TABLE ${table}\n${newColumns.map((c) => `  DROP COLUMN IF EXISTS ${c.name}`).join(",\n")};`,
    ],
    contractUp: [
      ...dropTwoWay(s, false),
      `-- migrate:allow ban-drop-column "the contract phase: no instance of the release that reads ${s.old.replace(/"/g, "'")} runs any more"\nALTER TABLE ${table} DROP COLUMN ${old};`,
    ],
    contractDown: [
      `ALTER TABLE ${table} ADD COLUMN ${old} ${s.oldType};`,
      ...createTwoWay(s),
      backfillOld(s),
    ],
  };
}

/** --table, --column and --to of a one-to-one change (rename, type change), checked. */
export function oneToOne(values: ExpandValues): { table: TableName; old: string; to: string } {
  const table = tableName(one(values, "table"), "--table");
  checkTriggerTable(table, "--table");
  const old = identifier(one(values, "column"), "--column");
  const to = identifier(one(values, "to"), "--to");
  distinctColumns([
    ["--column", old],
    ["--to", to],
  ]);
  return { table, old, to };
}
