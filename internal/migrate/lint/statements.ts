import { alterTable } from "./alter_table.js";
import { addIndex, declareColumn, foreignKey } from "./columns.js";
import type { FileContext } from "./context.js";
import { plpgsqlBody } from "./plpgsql.js";
import { constraints, kindOf, list, names, qualified, relName, type Node } from "./tree.js";

// LOCK TABLE's mode numbers (lockdefs.h).
const LOCK_MODES = [
  "",
  "ACCESS SHARE",
  "ROW SHARE",
  "ROW EXCLUSIVE",
  "SHARE UPDATE EXCLUSIVE",
  "SHARE",
  "SHARE ROW EXCLUSIVE",
  "EXCLUSIVE",
  "ACCESS EXCLUSIVE",
];

const hasOption = (options: unknown, name: string) =>
  list(options).some((o) => (o.DefElem as Node | undefined)?.defname === name);

/** One statement: its findings into `ctx`, what it builds into history. */
export function checkStatement(ctx: FileContext, node: Node, sql: string): void {
  const [kind, body] = kindOf(node);
  switch (kind) {
    case "CreateStmt":
      return createTable(ctx, body);
    case "AlterTableStmt":
      if (body.objtype === "OBJECT_TABLE") alterTable(ctx, body);
      return;
    case "IndexStmt":
      return createIndex(ctx, body);
    case "DropStmt":
      return drop(ctx, body);
    case "DropdbStmt":
      return ctx.add("ban-drop-database", { message: `DROP DATABASE ${String(body.dbname)}` });
    case "TruncateStmt":
      if (body.behavior === "DROP_CASCADE") {
        const tables = list(body.relations).map((r) => relName(r.RangeVar));
        ctx.add("ban-truncate-cascade", {
          table: tables[0],
          also: tables.slice(1),
          message: `TRUNCATE ${tables.join(", ")} CASCADE`,
        });
      }
      return;
    case "RenameStmt":
      return rename(ctx, body);
    case "VacuumStmt":
      if (!hasOption(body.options, "full")) return;
      if (list(body.rels).length === 0)
        return ctx.add("vacuum-full", { message: "VACUUM FULL of every table of the database" });
      for (const r of list(body.rels)) {
        const table = relName((r.VacuumRelation as Node).relation);
        ctx.add("vacuum-full", { table, message: `VACUUM FULL ${table}` });
      }
      return;
    case "ClusterStmt":
      return ctx.add("cluster", {
        table: relName(body.relation),
        message: `CLUSTER ${relName(body.relation) || "(every clustered table)"}`,
      });
    case "LockStmt": {
      const tables = list(body.relations).map((r) => relName(r.RangeVar));
      const mode = LOCK_MODES[Number(body.mode ?? 8)] ?? "ACCESS EXCLUSIVE";
      return ctx.add("lock-table", {
        table: tables[0],
        also: tables.slice(1),
        mode,
        message: `LOCK TABLE ${tables.join(", ")} IN ${mode} MODE`,
      });
    }
    case "RefreshMatViewStmt":
      if (!body.concurrent && !body.skipData)
        ctx.add("refresh-materialized-view", {
          table: relName(body.relation),
          message: `REFRESH MATERIALIZED VIEW ${relName(body.relation)}`,
        });
      return;
    case "UpdateStmt":
    case "DeleteStmt": {
      const table = relName(body.relation);
      if (!body.whereClause && ctx.existing(table))
        ctx.add(kind === "UpdateStmt" ? "update-without-where" : "delete-without-where", {
          table,
          message: `${kind === "UpdateStmt" ? "UPDATE" : "DELETE FROM"} ${table} without WHERE: every row`,
        });
      return;
    }
    case "ReindexStmt":
      if (!hasOption(body.params, "concurrently")) {
        const target = relName(body.relation) || String(body.name ?? "");
        ctx.add("require-concurrent-reindex", { table: target, message: `REINDEX ${target}` });
      }
      return;
    case "TransactionStmt":
      return transaction(ctx, body);
    case "CreateDomainStmt":
      if (list(body.constraints).length)
        ctx.add("ban-create-domain-with-constraint", {
          message: `domain ${names(body.domainname).join(".")} with a constraint`,
        });
      return;
    case "AlterDomainStmt":
      if (body.subtype === "C")
        ctx.add("ban-alter-domain-with-add-constraint", {
          message: `ALTER DOMAIN ${names(body.typeName).join(".")} ADD CONSTRAINT`,
        });
      return;
    case "DoStmt":
    case "CreateFunctionStmt":
      return plpgsqlBody(ctx, kind, body, sql);
  }
}

function createTable(ctx: FileContext, body: Node): void {
  const table = relName(body.relation);
  // IF NOT EXISTS on a table that exists (the database says so, or, without
  // one, an earlier file created it) is a no-op: the table stays existing.
  if (body.if_not_exists && !ctx.absent(table)) return;
  ctx.created.add(table);
  ctx.history.tables.add(table);
  for (const el of list(body.tableElts)) {
    const def = el.ColumnDef as Node | undefined;
    if (def) {
      declareColumn(ctx, table, def);
      for (const c of constraints(def))
        if (c.contype === "CONSTR_FOREIGN") foreignKey(ctx, table, [String(def.colname)]);
      continue;
    }
    const c = el.Constraint as Node | undefined;
    if (c?.contype === "CONSTR_PRIMARY" || c?.contype === "CONSTR_UNIQUE")
      addIndex(ctx, table, names(c.keys));
    if (c?.contype === "CONSTR_FOREIGN") foreignKey(ctx, table, names(c.fk_attrs));
  }
}

function createIndex(ctx: FileContext, body: Node): void {
  const table = relName(body.relation);
  addIndex(
    ctx,
    table,
    list(body.indexParams).map((p) => String((p.IndexElem as Node).name ?? "")),
  );
  const name = String(body.idxname ?? "");
  if (body.concurrent) {
    if (ctx.inTransaction)
      ctx.add("ban-concurrent-index-creation-in-transaction", {
        table,
        message: `index ${name} on ${table} inside BEGIN … COMMIT`,
      });
    if (!body.if_not_exists)
      ctx.add("prefer-robust-stmts", {
        message: `CREATE INDEX CONCURRENTLY ${name} without IF NOT EXISTS`,
      });
    return;
  }
  if (ctx.existing(table))
    ctx.add("require-concurrent-index-creation", {
      table,
      message: `index ${name} on ${table} without CONCURRENTLY`,
    });
}

function drop(ctx: FileContext, body: Node): void {
  const objects = list(body.objects).map((o) =>
    qualified(o.List ? names((o.List as Node).items) : names([o])),
  );
  switch (body.removeType) {
    case "OBJECT_TABLE":
      for (const table of objects)
        if (!ctx.created.has(table))
          ctx.add("ban-drop-table", { table, message: `DROP TABLE ${table}` });
      return;
    case "OBJECT_INDEX":
      if (!body.concurrent)
        ctx.add("require-concurrent-index-deletion", {
          message: `DROP INDEX ${objects.join(", ")} without CONCURRENTLY`,
        });
      else if (!body.missing_ok)
        ctx.add("prefer-robust-stmts", {
          message: `DROP INDEX CONCURRENTLY ${objects.join(", ")} without IF EXISTS`,
        });
      return;
    case "OBJECT_SCHEMA":
      if (body.behavior === "DROP_CASCADE")
        ctx.add("ban-drop-schema-cascade", {
          message: `DROP SCHEMA ${objects.join(", ")} CASCADE`,
        });
      return;
  }
}

function rename(ctx: FileContext, body: Node): void {
  const table = relName(body.relation);
  if (!ctx.existing(table)) return;
  if (body.renameType === "OBJECT_COLUMN")
    ctx.add("renaming-column", {
      table,
      message: `${table}.${String(body.subname)} → ${String(body.newname)}`,
    });
  else if (body.renameType === "OBJECT_TABLE")
    ctx.add("renaming-table", { table, message: `${table} → ${String(body.newname)}` });
}

function transaction(ctx: FileContext, body: Node): void {
  switch (body.kind) {
    case "TRANS_STMT_BEGIN":
    case "TRANS_STMT_START":
      ctx.add("transaction-nesting", { message: "BEGIN inside a migration" });
      ctx.inTransaction = true;
      ctx.openedAt = ctx.line;
      return;
    case "TRANS_STMT_COMMIT":
    case "TRANS_STMT_ROLLBACK":
      ctx.inTransaction = false;
      return;
  }
}
