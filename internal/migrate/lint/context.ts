import type { Finding } from "./finding.js";
import { RULES, namesOf, type Rule, type RuleId } from "./rules.js";
import type { TypeSpec } from "./tree.js";

/**
 * What earlier migration files built, in order: which tables exist, their
 * columns' types and their indexes. Without a database this is how a table
 * named in `CREATE TABLE IF NOT EXISTS` is told new from existing, and how a
 * type change is told metadata-only.
 */
export interface History {
  tables: Set<string>;
  /** "table.column" → type as last declared. */
  columns: Map<string, TypeSpec>;
  /** table → the column lists of its indexes (a primary key and unique constraints included). */
  indexes: Map<string, string[][]>;
  /** "table.column" with a validated CHECK (column IS NOT NULL): SET NOT NULL needs no scan. */
  notNullChecked: Set<string>;
  /** "table.constraint" → column, for CHECK (column IS NOT NULL) added NOT VALID. */
  notNullChecks: Map<string, string>;
}

export function emptyHistory(): History {
  return {
    tables: new Set(),
    columns: new Map(),
    indexes: new Map(),
    notNullChecked: new Set(),
    notNullChecks: new Map(),
  };
}

/** What the database says, when lint is given one. */
export interface Catalog {
  tableExists(table: string): boolean;
  /** The column's type as the catalog has it, when known. */
  columnType(table: string, column: string): TypeSpec | undefined;
  /** Whether an index of `table` starts with these columns (in any order). */
  indexed(table: string, columns: string[]): boolean;
}

/** A foreign key seen in the file, checked for a supporting index once the file is read. */
export interface ForeignKey {
  table: string;
  columns: string[];
  line: number;
  leading: string;
}

export interface Report {
  table?: string;
  also?: string[];
  message: string;
  /** Overrides the rule's lock mode (LOCK TABLE names its own). */
  mode?: string;
}

/** State while one file is read, statement by statement. */
export class FileContext {
  readonly findings: Finding[] = [];
  /** Tables new in this file: created here, so empty while it runs. */
  readonly created = new Set<string>();
  /** "table.constraint" added NOT VALID in this file. */
  readonly notValid = new Set<string>();
  readonly foreignKeys: ForeignKey[] = [];
  inTransaction = false;
  /** Line of the BEGIN still open. */
  openedAt = 0;
  /** Set while a DO block's or function's body is read: prefixes the message. */
  within = "";
  /** Function bodies run when called, not by the migration: their findings are warnings. */
  softened = false;
  line = 1;
  leading = "";

  constructor(
    readonly file: string,
    readonly history: History,
    readonly catalog: Catalog | undefined,
    readonly report: boolean,
    readonly style = false,
  ) {}

  /**
   * Whether `table` exists before this statement runs: any table this file
   * did not create (an earlier file, or someone, did).
   */
  existing(table: string): boolean {
    return !this.created.has(table);
  }

  /**
   * Whether CREATE TABLE IF NOT EXISTS makes `table` new: neither an earlier
   * file created it nor (with a database) does the catalog have it.
   */
  absent(table: string): boolean {
    return !this.history.tables.has(table) && !this.catalog?.tableExists(table);
  }

  add(rule: RuleId, r: Report): void {
    const def: Rule = RULES[rule];
    if (!this.report || (def.style && !this.style) || ignored(this.leading, rule)) return;
    const mode = r.mode ?? def.lock;
    this.findings.push({
      rule,
      severity: this.softened ? "warning" : def.severity,
      file: this.file,
      line: this.line,
      message: this.within ? `${this.within}: ${r.message}` : r.message,
      ...(mode
        ? { lock: { mode, on: [r.table, ...(r.also ?? [])].filter((t) => !!t) as string[] } }
        : {}),
      why: def.why,
      fix: def.fix,
      ...(r.table ? { table: r.table } : {}),
    });
  }
}

/** `-- migrate:lint-ignore RULE` before the statement, by the rule's id or an old alias. */
export function ignored(leading: string, rule: RuleId): boolean {
  if (!leading.includes("migrate:lint-ignore")) return false;
  return namesOf(rule).some((name) =>
    new RegExp(`migrate:lint-ignore\\b[^\\n]*(?<![\\w-])${name}(?![\\w-])`).test(leading),
  );
}
