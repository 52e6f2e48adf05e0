import type { FileContext } from "./context.js";
import type { Finding } from "./finding.js";
import { RULES, type RuleId } from "./rules.js";

// An expand migration runs while the previous release serves, and that
// release keeps serving after it: anything it would trip on is refused
// (`expand-incompatible`, which takes no consent: the statement belongs in
// the contract). Two sources: the rules that already mark a statement as
// breaking running code, and removals those rules do not cover.

/** Rules whose finding, in an expand file, means the previous release breaks. */
const BREAKING: ReadonlySet<RuleId> = new Set<RuleId>([
  "ban-drop-column",
  "ban-drop-table",
  "ban-drop-database",
  "ban-drop-schema-cascade",
  "ban-drop-not-null",
  "ban-truncate-cascade",
  "renaming-column",
  "renaming-table",
  "changing-column-type",
  "adding-not-nullable-field",
  "adding-required-field",
  "adding-foreign-key-constraint",
  "constraint-missing-not-valid",
  "disallowed-unique-constraint",
  "adding-serial-primary-key-field",
  "adding-exclusion-constraint",
  "ban-alter-domain-with-add-constraint",
  "delete-without-where",
]);

/** The `expand-incompatible` twin of each breaking finding of an expand file. */
export function breakingInExpand(findings: Finding[]): Finding[] {
  const rule = RULES["expand-incompatible"];
  return findings
    .filter((f) => f.severity === "error" && BREAKING.has(f.rule as RuleId))
    .map((f) => ({
      rule: "expand-incompatible",
      severity: "error",
      file: f.file,
      line: f.line,
      message: `${f.message} [${f.rule}]: the previous release still uses what this changes`,
      why: rule.why,
      fix: rule.fix,
      ...(f.table ? { table: f.table } : {}),
    }));
}

type Node = Record<string, unknown>;

// Objects the previous release may call or read by name.
const NAMED: Record<string, string> = {
  OBJECT_VIEW: "view",
  OBJECT_MATVIEW: "materialized view",
  OBJECT_FUNCTION: "function",
  OBJECT_PROCEDURE: "procedure",
  OBJECT_AGGREGATE: "aggregate",
  OBJECT_ROUTINE: "routine",
  OBJECT_TYPE: "type",
  OBJECT_DOMAIN: "domain",
  OBJECT_SEQUENCE: "sequence",
  OBJECT_SCHEMA: "schema",
  OBJECT_FOREIGN_TABLE: "foreign table",
};

/** Removals, renames and moves of named objects the table rules do not see. */
export function checkExpandStatement(ctx: FileContext, node: Node): void {
  const [kind, raw] = Object.entries(node)[0] ?? [];
  const body = (raw ?? {}) as Node;
  const what = NAMED[String(body.removeType ?? body.renameType ?? body.objectType)];
  const refuse = (message: string) => ctx.add("expand-incompatible", { message });
  switch (kind) {
    case "DropStmt":
      if (what) refuse(`DROP ${what.toUpperCase()}: the previous release may still use it`);
      return;
    case "RenameStmt":
      // Tables and columns have their own rules (renaming-table, renaming-column).
      if (what)
        refuse(`ALTER ${what.toUpperCase()} … RENAME: the previous release uses the old name`);
      return;
    case "AlterTableStmt":
      // A table this file created has no previous release using it.
      if (ctx.existing(tableOf(body)))
        for (const c of (body.cmds as Node[] | undefined) ?? [])
          alterTable(ctx, c.AlterTableCmd as Node);
      return;
    case "IndexStmt": {
      const table = tableOf(body);
      if (body.unique && ctx.existing(table))
        refuse(`CREATE UNIQUE INDEX on ${table}: the previous release may write rows it refuses`);
      return;
    }
    case "GrantStmt":
      if (!body.is_grant) refuse("REVOKE: the previous release may still need the privilege");
      return;
    case "AlterObjectSchemaStmt":
      refuse("SET SCHEMA: the previous release finds the object where it was");
      return;
    case "AlterEnumStmt":
      if (body.oldVal)
        refuse(
          `ALTER TYPE … RENAME VALUE ${String(body.oldVal)}: the previous release writes the old label`,
        );
      return;
  }
}

// What an ALTER TABLE takes away that the table rules do not call breaking.
function alterTable(ctx: FileContext, cmd: Node | undefined): void {
  const refuse = (message: string) => ctx.add("expand-incompatible", { message });
  switch (cmd?.subtype) {
    case "AT_ColumnDefault":
      if (!cmd.def)
        refuse(
          `DROP DEFAULT on ${String(cmd.name)}: the previous release may leave the column out`,
        );
      return;
    case "AT_DropConstraint":
      refuse(
        `DROP CONSTRAINT ${String(cmd.name)}: the previous release may rely on it (ON CONFLICT, a key it assumes)`,
      );
      return;
    case "AT_EnableRowSecurity":
    case "AT_ForceRowSecurity":
      refuse(
        "row level security: the previous release's queries would see only what a policy lets through",
      );
      return;
  }
}

function tableOf(body: Node): string {
  const rel = body.relation as Node | undefined;
  return [rel?.schemaname, rel?.relname].filter(Boolean).join(".");
}
