import { SqlSyntaxError, splitStatements, type Split, type Statement } from "../sql.js";
import type { MigrationFile } from "../source.js";
import { FileContext, emptyHistory, type Catalog, type History } from "./context.js";
import { breakingInExpand, checkExpandStatement } from "./expand.js";
import type { Finding } from "./finding.js";
import { loadParsers } from "./parser.js";
import { RULES } from "./rules.js";
import { checkStatement } from "./statements.js";

export interface FileLintOptions {
  /** What earlier files built (see lintMigrationFiles); empty when not given. */
  history?: History;
  /** The database's tables, when lint has one. */
  catalog?: Catalog;
  /** Also the schema-style rules (prefer-text-field, prefer-bigint-over-int, …). */
  style?: boolean;
  /** How files are split: splitStatements, or one remembering what the caller parsed already. */
  split?: Split;
}

/**
 * Findings of one migration's up file (and the down file's syntax). Tables
 * created earlier in the same file are new and exempt; a statement preceded
 * by `-- migrate:lint-ignore RULE` skips that rule. `history` is updated
 * with what the file builds.
 */
export async function lintMigrationFile(
  file: MigrationFile,
  opts: FileLintOptions = {},
): Promise<Finding[]> {
  await loadParsers();
  return lintLoaded(file, opts.history ?? emptyHistory(), opts, true);
}

/**
 * Every file in order, each judged by what the earlier ones built; findings
 * only for the files named in `only` (e.g. the pending ones), all when absent.
 */
export async function lintMigrationFiles(
  files: MigrationFile[],
  opts: { only?: ReadonlySet<string>; catalog?: Catalog; style?: boolean; split?: Split } = {},
): Promise<Finding[]> {
  await loadParsers();
  const history = emptyHistory();
  return files.flatMap((f) => lintLoaded(f, history, opts, opts.only?.has(f.name) ?? true));
}

function lintLoaded(
  file: MigrationFile,
  history: History,
  { catalog, style, split = splitStatements }: FileLintOptions,
  report: boolean,
): Finding[] {
  const ctx = new FileContext(file.upPath, history, catalog, report, style);
  if (file.down === undefined)
    ctx.add("missing-down", { message: `no ${file.name}.down.sql beside it` });
  const up = parse(ctx, file.upPath, file.up, split);
  if (file.down !== undefined && file.downPath) parse(ctx, file.downPath, file.down, split);
  const expand = file.phase?.kind === "expand";
  for (const st of up) {
    ctx.line = st.line;
    ctx.leading = st.leading;
    checkStatement(ctx, st.node, st.sql);
    if (expand) checkExpandStatement(ctx, st.node);
  }
  if (expand) ctx.findings.push(...breakingInExpand(ctx.findings));
  if (ctx.inTransaction) {
    ctx.line = ctx.openedAt;
    ctx.add("ban-uncommitted-transaction", { message: "BEGIN without COMMIT" });
  }
  for (const fk of ctx.foreignKeys) {
    const known = (history.indexes.get(fk.table) ?? []).some((cols) => leads(cols, fk.columns));
    if (known || catalog?.indexed(fk.table, fk.columns)) continue;
    ctx.line = fk.line;
    ctx.leading = fk.leading;
    ctx.add("foreign-key-without-index", {
      table: fk.table,
      message: `${fk.table} (${fk.columns.join(", ")}) has no index starting with these columns`,
    });
  }
  // By file and line: the foreign keys are checked after the rest.
  return ctx.findings.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
}

/** Whether an index on `index` serves lookups by `columns`. */
export function leads(index: string[], columns: string[]): boolean {
  const head = new Set(index.slice(0, columns.length));
  return columns.length > 0 && columns.every((c) => head.has(c));
}

function parse(ctx: FileContext, path: string, text: string, split: Split): Statement[] {
  try {
    return split(text, path);
  } catch (err) {
    if (!(err instanceof SqlSyntaxError)) throw err;
    if (!ctx.report) return [];
    ctx.findings.push({
      rule: "syntax",
      severity: "error",
      file: path,
      line: err.line,
      message: err.message.replace(/^[^:]*:\d+: /, ""),
      why: RULES.syntax.why,
      fix: RULES.syntax.fix,
    });
    return [];
  }
}
