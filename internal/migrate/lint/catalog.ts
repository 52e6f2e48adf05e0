import type pg from "pg";
import type { Catalog } from "./context.js";
import { leads } from "./file.js";
import type { TableSize } from "./finding.js";
import { parseSql } from "./parser.js";
import { kindOf, typeSpec, type Node, type TypeSpec } from "./tree.js";

/** The target database's tables as lint needs them: sizes, column types, indexes. */
export interface DatabaseCatalog extends Catalog {
  size(table: string): TableSize | undefined;
}

// Tables outside public are named schema.table, as relName names them.
const NAME = `CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END`;
const USER_TABLES = `c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`;

/** A table's size could not be read within lock_timeout: another session holds a lock on it. */
export class SizesUnreadableError extends Error {
  override name = "SizesUnreadableError";
}

/**
 * Reads the whole catalog once (a few queries, however many tables): rows
 * are reltuples (the planner's estimate, -1 before the first ANALYZE, read
 * as unknown: bytes then decide), bytes pg_total_relation_size, which takes
 * ACCESS SHARE on each table: the wait for it is bounded by `lockTimeoutMs`,
 * whoever calls (a plan's session has no lock_timeout of its own).
 */
export async function readCatalog(
  client: pg.ClientBase,
  { lockTimeoutMs }: { lockTimeoutMs: number },
): Promise<DatabaseCatalog> {
  await client.query(
    `BEGIN READ ONLY; SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`,
  );
  try {
    return await readCatalogIn(client);
  } catch (err) {
    if ((err as { code?: string }).code !== "55P03") throw err;
    throw new SizesUnreadableError(
      `could not read the tables' sizes: a lock on one of them was not granted within lock_timeout (${lockTimeoutMs} ms): another session holds it (see \`migrate locks\`)`,
    );
  } finally {
    await client.query("ROLLBACK").catch(() => undefined);
  }
}

async function readCatalogIn(client: pg.ClientBase): Promise<DatabaseCatalog> {
  const sizes = new Map<string, TableSize>();
  // A partitioned table is the sum of its leaves (its own entry is empty);
  // an index (REINDEX INDEX, DROP INDEX) is judged by the table it is on.
  // Only those tables are measured (once each: the CTE is materialized):
  // pg_total_relation_size reads every file of the relation and waits for
  // its ACCESS SHARE lock, so measuring each index, TOAST table, sequence
  // and view of the database would cost as much again and would queue
  // behind a lock on any of them (a view being replaced).
  const tables = await client.query<{ name: string; rows: string; bytes: string; index: boolean }>(
    `WITH sized AS MATERIALIZED (
       SELECT c.oid, ${NAME} AS name, greatest(c.reltuples, 0)::bigint AS rows,
              pg_total_relation_size(c.oid) AS bytes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE ${USER_TABLES} AND c.relkind <> 'p'
       UNION ALL
       SELECT c.oid, ${NAME}, coalesce(sum(greatest(l.reltuples, 0)), 0)::bigint,
              coalesce(sum(pg_total_relation_size(l.oid)), 0)::bigint
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
              pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid
        WHERE ${USER_TABLES} AND c.relkind = 'p' AND t.isleaf
        GROUP BY c.oid, n.nspname, c.relname)
     SELECT s.name, s.rows::text AS rows, s.bytes::text AS bytes, false AS index FROM sized s
     UNION ALL
     SELECT CASE WHEN n.nspname = 'public' THEN x.relname ELSE n.nspname || '.' || x.relname END,
            s.rows::text, s.bytes::text, true
       FROM pg_index i JOIN sized s ON s.oid = i.indrelid
       JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_namespace n ON n.oid = x.relnamespace`,
  );
  const indexSizes = new Map<string, TableSize>();
  for (const t of tables.rows)
    (t.index ? indexSizes : sizes).set(t.name, { rows: Number(t.rows), bytes: Number(t.bytes) });
  const columns = new Map<string, string>();
  const cols = await client.query<{ name: string; col: string; type: string }>(
    `SELECT ${NAME} AS name, a.attname AS col, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${USER_TABLES} AND a.attnum > 0 AND NOT a.attisdropped`,
  );
  for (const c of cols.rows) columns.set(`${c.name}.${c.col}`, c.type);
  const indexes = new Map<string, string[][]>();
  const idx = await client.query<{ name: string; cols: string[] }>(
    `SELECT ${NAME} AS name, array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) AS cols
       FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${USER_TABLES}`,
  );
  for (const i of idx.rows) indexes.set(i.name, [...(indexes.get(i.name) ?? []), i.cols]);
  return {
    tableExists: (table) => sizes.has(table),
    size: (table) => sizes.get(table) ?? indexSizes.get(table),
    columnType: (table, column) => {
      const text = columns.get(`${table}.${column}`);
      return text === undefined ? undefined : parseType(text);
    },
    indexed: (table, cols) => (indexes.get(table) ?? []).some((i) => leads(i, cols)),
  };
}

// format_type's text back into a TypeSpec through PostgreSQL's own grammar.
function parseType(text: string): TypeSpec | undefined {
  const stmt = parseSql(`CREATE TABLE t (c ${text})`)?.[0];
  if (!stmt) return undefined;
  const [, body] = kindOf(stmt);
  const def = (body.tableElts as Node[])[0]!.ColumnDef as Node;
  return typeSpec(def.typeName);
}
