import type { ParseResult, ScanToken } from "libpg-query";

/** One SQL statement of a file, with where it starts. */
export interface Statement {
  sql: string;
  /** 1-based line of the statement's first token. */
  line: number;
  /** The parse tree node, e.g. { IndexStmt: {...} }. */
  node: Record<string, unknown>;
  /** Comments and blank lines between the previous statement and this one. */
  leading: string;
}

/** A problem at a line of a migration file: `file:line: message`. */
export class FileLineError extends Error {
  override name = "FileLineError";
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
  }
}

/** A file that PostgreSQL's own parser rejects. */
export class SqlSyntaxError extends FileLineError {
  override name = "SqlSyntaxError";
}

let parseSync: ((sql: string) => ParseResult) | undefined;
let scanSync: ((sql: string) => { tokens: ScanToken[] }) | undefined;
let loading: Promise<void> | undefined;

/**
 * Loads PostgreSQL's parser (libpg-query, WebAssembly); await once before
 * splitting. Loaded on demand: commands that parse nothing start faster.
 */
export function loadSqlParser(): Promise<void> {
  return (loading ??= compileParser().catch((err: unknown) => {
    loading = undefined;
    throw err;
  }));
}

async function compileParser(): Promise<void> {
  const parser = await import("libpg-query");
  await parser.loadModule();
  parseSync = parser.parseSync;
  scanSync = parser.scanSync;
}

/** PostgreSQL's tokens of `sql` (byte offsets; comments are tokens too); after loadSqlParser(). */
export function scanTokens(sql: string): ScanToken[] {
  if (!scanSync) throw new Error("loadSqlParser() must be awaited before scanTokens()");
  return scanSync(sql).tokens;
}

/**
 * Splits a file into statements with PostgreSQL's own grammar (dollar quotes,
 * function bodies and comments handled as the server would), each with its
 * first line for error messages and lint findings.
 */
export function splitStatements(text: string, file: string): Statement[] {
  if (!parseSync) throw new Error("loadSqlParser() must be awaited before splitStatements()");
  let result: ParseResult;
  try {
    result = parseSync(text);
  } catch (err) {
    // An empty file (or comments only) is a no-op migration, as in golang-migrate.
    if ((err as Error).message === "Query cannot be empty") return [];
    const position =
      (err as { sqlDetails?: { cursorPosition?: number } }).sqlDetails?.cursorPosition ?? 0;
    throw new SqlSyntaxError(file, lineAt(text, position), (err as Error).message);
  }
  const bytes = Buffer.from(text, "utf8");
  let previousEnd = 0;
  return (result.stmts ?? []).map((s) => {
    const start = skipSpaceAndComments(bytes, s.stmt_location ?? 0);
    const end = s.stmt_len ? (s.stmt_location ?? 0) + s.stmt_len : bytes.length;
    const sql = bytes.subarray(start, end).toString("utf8").trim();
    const leading = bytes.subarray(previousEnd, start).toString("utf8");
    previousEnd = end;
    const node = s.stmt as unknown as Record<string, unknown>;
    return { sql, line: lineAtByte(bytes, start), node, leading };
  });
}

/** splitStatements, or one that remembers what it split: see rememberingSplit. */
export type Split = (text: string, file: string) => Statement[];

/**
 * splitStatements that parses each text once: a command that reads a file
 * more than once (`up` analyses each pending file, then its consent gate
 * lints them all) asks it again and gets the same statements, which nobody
 * modifies. A text that does not parse is not remembered: it throws each time.
 */
export function rememberingSplit(): Split {
  const split = new Map<string, Statement[]>();
  return (text, file) => {
    let statements = split.get(text);
    if (!statements) split.set(text, (statements = splitStatements(text, file)));
    return statements;
  };
}

// stmt_location may point just after the previous statement's semicolon, so
// skip the whitespace and comments that belong before the statement.
function skipSpaceAndComments(bytes: Buffer, from: number): number {
  let i = from;
  for (;;) {
    while (i < bytes.length && /\s/.test(String.fromCharCode(bytes[i]!))) i++;
    if (bytes[i] === 0x2d && bytes[i + 1] === 0x2d) {
      while (i < bytes.length && bytes[i] !== 0x0a) i++;
      continue;
    }
    if (bytes[i] === 0x2f && bytes[i + 1] === 0x2a) {
      const close = bytes.indexOf("*/", i + 2);
      i = close < 0 ? bytes.length : close + 2;
      continue;
    }
    return i;
  }
}

function lineAtByte(bytes: Buffer, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < bytes.length; i++) if (bytes[i] === 0x0a) line++;
  return line;
}

/** 1-based line of a character position (PostgreSQL positions count characters). */
export function lineAt(text: string, position: number): number {
  return text.slice(0, Math.max(0, position)).split("\n").length;
}
