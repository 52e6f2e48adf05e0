import { metadataOnly, typeText } from "./column_types.js";
import {
  addIndex,
  declareColumn,
  foreignKey,
  isSerial,
  notNullCheckColumn,
  volatileCalls,
} from "./columns.js";
import type { FileContext } from "./context.js";
import { constraints, names, relName, typeSpec, type Node } from "./tree.js";

/** ALTER TABLE: each subcommand on its own; a table new in this file only updates history. */
export function alterTable(ctx: FileContext, body: Node): void {
  const table = relName(body.relation);
  const existing = ctx.existing(table);
  for (const item of (body.cmds as Node[] | undefined) ?? []) {
    const cmd = item.AlterTableCmd as Node;
    if (cmd.subtype === "AT_AddColumn")
      addColumn(ctx, table, (cmd.def as Node).ColumnDef as Node, existing);
    else if (cmd.subtype === "AT_AddConstraint")
      addConstraint(ctx, table, (cmd.def as Node).Constraint as Node, existing);
    else if (cmd.subtype === "AT_AlterColumnType") changeType(ctx, table, cmd, existing);
    else if (existing) otherCommand(ctx, table, cmd);
    else if (cmd.subtype === "AT_ValidateConstraint") validated(ctx, table, String(cmd.name));
  }
}

function addColumn(ctx: FileContext, table: string, def: Node, existing: boolean): void {
  declareColumn(ctx, table, def);
  const cs = constraints(def);
  for (const c of cs)
    if (c.contype === "CONSTR_FOREIGN") foreignKey(ctx, table, [String(def.colname)]);
  if (!existing) return;
  const col = `${table}.${String(def.colname)}`;
  const kinds = cs.map((c) => c.contype);
  const fill = cs.find((c) => c.contype === "CONSTR_DEFAULT");
  const volatile = fill ? volatileCalls(fill.raw_expr) : [];
  if (isSerial(def) || kinds.includes("CONSTR_IDENTITY"))
    ctx.add("adding-serial-field", {
      table,
      message: `${col}: a serial or identity column fills every row`,
    });
  else if (volatile.length)
    ctx.add("adding-field-with-default", {
      table,
      message: `${col} DEFAULT ${volatile.join(", ")}(): volatile, evaluated for every existing row`,
    });
  if (cs.some((c) => c.contype === "CONSTR_GENERATED" && c.generated_kind === "s"))
    ctx.add("adding-field-with-default", {
      table,
      message: `${col}: GENERATED … STORED computes every row`,
    });
  const filled =
    fill ||
    isSerial(def) ||
    kinds.includes("CONSTR_IDENTITY") ||
    kinds.includes("CONSTR_GENERATED");
  if ((kinds.includes("CONSTR_NOTNULL") || kinds.includes("CONSTR_PRIMARY")) && !filled)
    ctx.add("adding-required-field", { table, message: `${col} is NOT NULL without a DEFAULT` });
  for (const c of cs) inlineConstraint(ctx, table, col, c);
}

function inlineConstraint(ctx: FileContext, table: string, col: string, c: Node): void {
  switch (c.contype) {
    case "CONSTR_FOREIGN":
      ctx.add("adding-foreign-key-constraint", {
        table,
        also: [relName(c.pktable)],
        message: `${col} REFERENCES ${relName(c.pktable)} inline: validated at once`,
      });
      return;
    case "CONSTR_UNIQUE":
      ctx.add("disallowed-unique-constraint", {
        table,
        message: `${col} UNIQUE inline builds its index under the lock`,
      });
      return;
    case "CONSTR_PRIMARY":
      ctx.add("adding-serial-primary-key-field", {
        table,
        message: `${col} PRIMARY KEY inline builds its index under the lock`,
      });
      return;
  }
}

function addConstraint(ctx: FileContext, table: string, c: Node, existing: boolean): void {
  const name = `${table}.${String(c.conname ?? "")}`;
  const nullCol = c.contype === "CONSTR_CHECK" ? notNullCheckColumn(c) : undefined;
  if (c.contype === "CONSTR_FOREIGN") foreignKey(ctx, table, names(c.fk_attrs));
  if (c.contype === "CONSTR_UNIQUE" || c.contype === "CONSTR_PRIMARY")
    addIndex(ctx, table, names(c.keys));
  if (c.skip_validation) {
    ctx.notValid.add(name);
    if (nullCol) ctx.history.notNullChecks.set(name, nullCol);
  } else if (nullCol) ctx.history.notNullChecked.add(`${table}.${nullCol}`);
  if (!existing) return;
  switch (c.contype) {
    case "CONSTR_CHECK":
      if (!c.skip_validation)
        ctx.add("constraint-missing-not-valid", {
          table,
          message: `CHECK ${String(c.conname ?? "")} on ${table} without NOT VALID`,
        });
      return;
    case "CONSTR_FOREIGN":
      if (!c.skip_validation)
        ctx.add("adding-foreign-key-constraint", {
          table,
          also: [relName(c.pktable)],
          message: `FOREIGN KEY ${String(c.conname ?? "")} on ${table} → ${relName(c.pktable)} without NOT VALID`,
        });
      return;
    case "CONSTR_UNIQUE":
      if (!c.indexname)
        ctx.add("disallowed-unique-constraint", {
          table,
          message: `UNIQUE ${String(c.conname ?? "")} on ${table} without USING INDEX`,
        });
      return;
    case "CONSTR_PRIMARY":
      if (!c.indexname)
        ctx.add("adding-serial-primary-key-field", {
          table,
          message: `PRIMARY KEY on ${table} without USING INDEX`,
        });
      return;
    case "CONSTR_EXCLUSION":
      ctx.add("adding-exclusion-constraint", {
        table,
        message: `EXCLUDE ${String(c.conname ?? "")} on ${table}`,
      });
      return;
  }
}

function changeType(ctx: FileContext, table: string, cmd: Node, existing: boolean): void {
  const def = (cmd.def as Node).ColumnDef as Node;
  const to = typeSpec(def.typeName);
  const col = `${table}.${String(cmd.name)}`;
  const from = ctx.catalog?.columnType(table, String(cmd.name)) ?? ctx.history.columns.get(col);
  ctx.history.columns.set(col, to);
  if (!existing || (!def.raw_default && metadataOnly(from, to))) return;
  const was = from ? `${typeText(from)} → ` : "";
  ctx.add("changing-column-type", {
    table,
    message: `${col} TYPE ${was}${typeText(to)}${def.raw_default ? " USING …" : ""}`,
  });
}

function validated(ctx: FileContext, table: string, conname: string): void {
  const column = ctx.history.notNullChecks.get(`${table}.${conname}`);
  if (column) ctx.history.notNullChecked.add(`${table}.${column}`);
}

function otherCommand(ctx: FileContext, table: string, cmd: Node): void {
  const col = `${table}.${String(cmd.name ?? "")}`;
  switch (cmd.subtype) {
    case "AT_ValidateConstraint":
      validated(ctx, table, String(cmd.name));
      if (ctx.notValid.has(`${table}.${String(cmd.name)}`))
        ctx.add("constraint-missing-not-valid", {
          table,
          message: `${String(cmd.name)} added NOT VALID and validated in the same file: one transaction holds the lock through the scan`,
        });
      return;
    case "AT_SetNotNull":
      if (!ctx.history.notNullChecked.has(col))
        ctx.add("adding-not-nullable-field", { table, message: `${col} SET NOT NULL` });
      return;
    case "AT_DropNotNull":
      ctx.add("ban-drop-not-null", { table, message: `${col} DROP NOT NULL` });
      return;
    case "AT_DropColumn":
      ctx.add("ban-drop-column", { table, message: `${col} dropped` });
      return;
    case "AT_SetUnLogged":
    case "AT_SetLogged":
      ctx.add("set-unlogged", {
        table,
        message: `${table} SET ${cmd.subtype === "AT_SetLogged" ? "LOGGED" : "UNLOGGED"}`,
      });
      return;
  }
}
