import { readMigrations, type MigrationFile } from "../source.js";
import { SqlSyntaxError, loadSqlParser, splitStatements, type Statement } from "../sql.js";

export interface Finding {
  rule: string;
  severity: "error" | "warning";
  file: string;
  line: number;
  message: string;
}

/**
 * Rules for DDL that locks or breaks a busy table. Each works on
 * PostgreSQL's own parse tree. Tables created earlier in the same file are
 * new and exempt. A statement preceded by `-- migrate:lint-ignore RULE`
 * skips that rule.
 */
export const RULES = {
  "index-not-concurrent":
    "CREATE INDEX on an existing table without CONCURRENTLY blocks writes while it builds",
  "not-null-without-default":
    "ADD COLUMN ... NOT NULL without a DEFAULT fails on a non-empty table",
  "column-type-change": "ALTER COLUMN ... TYPE rewrites the table under an ACCESS EXCLUSIVE lock",
  "constraint-not-valid":
    "ADD CONSTRAINT without NOT VALID scans the table under a lock; validate separately",
  "drop-column":
    "DROP COLUMN in an up migration breaks code still reading it; drop in a later release",
  "drop-table": "DROP TABLE in an up migration loses data; drop in a later release after a backup",
  "missing-down": "a migration without a .down.sql cannot be reverted",
  syntax: "PostgreSQL's parser rejects the file",
} as const;

type Node = Record<string, unknown>;

export async function lintMigrations(dir: string): Promise<Finding[]> {
  await loadSqlParser();
  const findings: Finding[] = [];
  for (const file of readMigrations(dir).migrations) findings.push(...lintFile(file));
  return findings;
}

/**
 * One migration's findings (its up and down files), for a caller that holds
 * the file: the apply gate (consent.ts). The SQL parser must be loaded.
 */
export function lintMigrationFile(file: MigrationFile, _opts?: Record<string, unknown>): Finding[] {
  return lintFile(file);
}

function lintFile(file: MigrationFile): Finding[] {
  const findings: Finding[] = [];
  if (file.down === undefined) {
    findings.push(
      finding("missing-down", "error", file.upPath, 1, `no ${file.name}.down.sql beside it`),
    );
  }
  const parsed = parse(file.upPath, file.up, findings);
  if (file.down !== undefined && file.downPath) parse(file.downPath, file.down, findings);
  const created = new Set<string>();
  for (const st of parsed) {
    const report = (rule: keyof typeof RULES, detail: string) => {
      if (!new RegExp(`migrate:lint-ignore\\b[^\\n]*\\b${rule}\\b`).test(st.leading)) {
        findings.push(finding(rule, "error", file.upPath, st.line, detail));
      }
    };
    checkStatement(st.node, created, report);
  }
  return findings;
}

function parse(path: string, text: string, findings: Finding[]): Statement[] {
  try {
    return splitStatements(text, path);
  } catch (err) {
    if (!(err instanceof SqlSyntaxError)) throw err;
    findings.push(
      finding("syntax", "error", path, err.line, err.message.replace(/^[^:]*:\d+: /, "")),
    );
    return [];
  }
}

function checkStatement(
  node: Node,
  created: Set<string>,
  report: (rule: keyof typeof RULES, detail: string) => void,
) {
  const [kind, body] = Object.entries(node)[0] as [string, Node];
  const table = (relation: unknown) => String((relation as Node | undefined)?.relname ?? "");
  switch (kind) {
    case "CreateStmt":
      created.add(table(body.relation));
      return;
    case "IndexStmt":
      if (!body.concurrent && !created.has(table(body.relation))) {
        report(
          "index-not-concurrent",
          `index ${body.idxname ?? ""} on ${table(body.relation)}: use CREATE INDEX CONCURRENTLY (such a migration runs outside a transaction by itself)`,
        );
      }
      return;
    case "DropStmt":
      if (body.removeType === "OBJECT_TABLE") report("drop-table", RULES["drop-table"]);
      return;
    case "AlterTableStmt": {
      const name = table(body.relation);
      if (created.has(name)) return;
      for (const item of (body.cmds as Node[] | undefined) ?? [])
        checkAlter(name, item.AlterTableCmd as Node, report);
      return;
    }
  }
}

function checkAlter(
  tableName: string,
  cmd: Node,
  report: (rule: keyof typeof RULES, detail: string) => void,
) {
  switch (cmd.subtype) {
    case "AT_AddColumn": {
      const def = (cmd.def as Node).ColumnDef as Node;
      const kinds = ((def.constraints as Node[] | undefined) ?? []).map(
        (c) => (c.Constraint as Node).contype,
      );
      const filled = kinds.some(
        (k) => k === "CONSTR_DEFAULT" || k === "CONSTR_IDENTITY" || k === "CONSTR_GENERATED",
      );
      if (kinds.includes("CONSTR_NOTNULL") && !filled) {
        report(
          "not-null-without-default",
          `${tableName}.${def.colname}: add it nullable or with a DEFAULT, backfill, then SET NOT NULL`,
        );
      }
      return;
    }
    case "AT_AlterColumnType":
      report(
        "column-type-change",
        `${tableName}.${cmd.name}: add a new column, backfill, switch readers, drop the old one`,
      );
      return;
    case "AT_AddConstraint": {
      const c = (cmd.def as Node).Constraint as Node;
      if ((c.contype === "CONSTR_CHECK" || c.contype === "CONSTR_FOREIGN") && !c.skip_validation) {
        report(
          "constraint-not-valid",
          `${tableName}: add it NOT VALID, then VALIDATE CONSTRAINT in a later migration`,
        );
      }
      if ((c.contype === "CONSTR_UNIQUE" || c.contype === "CONSTR_PRIMARY") && !c.indexname) {
        report(
          "constraint-not-valid",
          `${tableName}: build the unique index CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX`,
        );
      }
      return;
    }
    case "AT_DropColumn":
      report("drop-column", `${tableName}.${cmd.name}: ${RULES["drop-column"]}`);
      return;
  }
}

function finding(
  rule: keyof typeof RULES,
  severity: Finding["severity"],
  file: string,
  line: number,
  message: string,
): Finding {
  return { rule, severity, file, line, message };
}
