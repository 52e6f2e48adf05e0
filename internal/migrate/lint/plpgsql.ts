import type { FileContext } from "./context.js";
import { parsePlpgsql, parseSql } from "./parser.js";
import { checkStatement } from "./statements.js";
import { list, names, type Node } from "./tree.js";

// DO blocks run their statements as part of the migration: each static
// statement and each EXECUTE of a string literal is linted as if written
// out. Function bodies run only when called, so their DDL is reported as a
// warning; their queries (the function's job) are not judged.

const DML = new Set(["SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"]);

export function plpgsqlBody(ctx: FileContext, kind: string, body: Node, sql: string): void {
  const options = kind === "DoStmt" ? list(body.args) : list(body.options);
  const opt = (name: string) =>
    options.find((o) => (o.DefElem as Node).defname === name)?.DefElem as Node | undefined;
  const language = String(
    ((opt("language")?.arg as Node | undefined)?.String as Node | undefined)?.sval ?? "plpgsql",
  );
  if (language.toLowerCase() !== "plpgsql") return;
  const as = opt("as")?.arg as Node | undefined;
  const text = String(
    (as?.String as Node | undefined)?.sval ?? names((as?.List as Node | undefined)?.items)[0] ?? "",
  );
  const tree = text ? parsePlpgsql(sql) : undefined;
  if (!tree) return;
  const bodyLine = ctx.line + countLines(sql.slice(0, Math.max(0, sql.indexOf(text))));
  const saved = { line: ctx.line, within: ctx.within, softened: ctx.softened };
  const isFunction = kind === "CreateFunctionStmt";
  ctx.within = isFunction
    ? `in function ${names(body.funcname).join(".")} (runs when called)`
    : "in a DO block";
  ctx.softened = isFunction || ctx.softened;
  try {
    walk(tree, (node, lineno) => {
      ctx.line = bodyLine + Math.max(0, lineno - 1);
      inner(ctx, node, isFunction);
    });
  } finally {
    Object.assign(ctx, saved);
  }
}

function inner(ctx: FileContext, node: Node, isFunction: boolean): void {
  const exec = node.PLpgSQL_stmt_execsql as Node | undefined;
  const dyn = node.PLpgSQL_stmt_dynexecute as Node | undefined;
  const expr = ((exec?.sqlstmt ?? dyn?.query) as Node | undefined)?.PLpgSQL_expr as
    Node | undefined;
  if (!expr) return;
  let sql = String(expr.query ?? "");
  if (dyn) {
    const literal = /^\s*'((?:[^']|'')*)'\s*$/s.exec(sql);
    if (!literal) {
      ctx.add("unchecked-dynamic-sql", { message: `EXECUTE ${sql.slice(0, 60)}` });
      return;
    }
    sql = literal[1]!.replace(/''/g, "'");
  }
  for (const stmt of parseSql(sql) ?? []) {
    if (isFunction && DML.has(Object.keys(stmt)[0]!)) continue;
    checkStatement(ctx, stmt, sql);
  }
}

/** Calls `visit` on every PL/pgSQL statement node that carries a line number. */
function walk(node: unknown, visit: (node: Node, lineno: number) => void, lineno = 1): void {
  if (Array.isArray(node)) {
    for (const n of node) walk(n, visit, lineno);
    return;
  }
  if (!node || typeof node !== "object") return;
  for (const [key, value] of Object.entries(node as Node)) {
    if (!key.startsWith("PLpgSQL_stmt_")) {
      walk(value, visit, lineno);
      continue;
    }
    const line = Number((value as Node).lineno ?? lineno);
    visit({ [key]: value }, line);
    walk(value, visit, line);
  }
}

function countLines(text: string): number {
  let n = 0;
  for (const c of text) if (c === "\n") n++;
  return n;
}
