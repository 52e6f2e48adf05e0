import type * as LibPgQuery from "libpg-query";
import type { ParseResult } from "libpg-query";
import { loadSqlParser } from "../sql.js";

// PostgreSQL's parsers for what sql.ts does not split: the SQL inside DO
// blocks and PL/pgSQL function bodies.

let parser: typeof LibPgQuery | undefined;

export async function loadParsers(): Promise<void> {
  await loadSqlParser();
  if (parser) return;
  parser = await import("libpg-query");
  await parser.loadModule();
}

/** Parse trees of `sql`, or undefined when it is not SQL PostgreSQL accepts on its own. */
export function parseSql(sql: string): Record<string, unknown>[] | undefined {
  try {
    const result: ParseResult = parser!.parseSync(sql);
    return (result.stmts ?? []).map((s) => s.stmt as unknown as Record<string, unknown>);
  } catch {
    return undefined;
  }
}

/** PL/pgSQL's tree of a DO block or CREATE FUNCTION, or undefined when it does not parse. */
export function parsePlpgsql(sql: string): unknown {
  try {
    return parser!.parsePlPgSQLSync(sql);
  } catch {
    return undefined;
  }
}
