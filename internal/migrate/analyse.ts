import { FileLineError, splitStatements, type Split, type Statement } from "./sql.js";

/** First line of a migration that must run outside a transaction, statement by statement. */
export const NO_TRANSACTION_MARKER = "-- migrate:no-transaction";

/** Where a concurrent index statement points, so its result can be checked. */
export interface IndexTarget {
  /** Quoted, possibly schema-qualified table, for to_regclass(): `"public"."users"`. */
  table?: string;
  /** Quoted, possibly schema-qualified index (REINDEX INDEX, DROP INDEX). */
  index?: string;
  /** Name of an index the statement creates (unqualified: it lives in the table's schema). */
  creates?: string;
}

/** How one file will run. */
export interface Script {
  statements: Statement[];
  /** False when a statement cannot run in a transaction (CONCURRENTLY, VACUUM...) or the marker says so. */
  transactional: boolean;
  /** Concurrent index statements to check before the migration is recorded. */
  indexes: IndexTarget[];
  /**
   * The file holds its own BEGIN … COMMIT blocks (allowed by
   * `transactions: "file"`): it runs as written, statement by statement, and
   * what committed is told from which of them completed.
   */
  ownTransactions?: true;
}

/**
 * Who owns transactions: `migration` (each migration in one transaction with
 * its record; transaction control inside a file refused) or `file` (a file
 * with its own BEGIN … COMMIT blocks runs them as written, as golang-migrate
 * runs files).
 */
export type TransactionMode = "migration" | "file";

/** The file asks for something we refuse to run, before anything runs. */
export class ScriptRefusedError extends FileLineError {
  override name = "ScriptRefusedError";
}

type Node = Record<string, unknown>;

// Statements PostgreSQL refuses inside a transaction block.
function outsideTransaction(node: Node): boolean {
  const [kind, body] = Object.entries(node)[0] as [string, Node];
  switch (kind) {
    case "VacuumStmt":
    case "CreatedbStmt":
    case "DropdbStmt":
    case "AlterSystemStmt":
    case "CreateTableSpaceStmt":
    case "DropTableSpaceStmt":
    case "CreateSubscriptionStmt":
    case "DropSubscriptionStmt":
      return true;
    case "ClusterStmt":
      return body.relation === undefined;
    case "ReindexStmt":
      return body.kind !== "REINDEX_OBJECT_INDEX" && body.kind !== "REINDEX_OBJECT_TABLE";
    case "AlterTableStmt":
      return ((body.cmds as Node[] | undefined) ?? []).some((c) => {
        const cmd = c.AlterTableCmd as Node;
        const def = (cmd.def as Node | undefined)?.PartitionCmd as Node | undefined;
        return cmd.subtype === "AT_DetachPartition" && def?.concurrent === true;
      });
    default:
      return false;
  }
}

/**
 * Parses a file and decides how it runs. A file wrapped whole in
 * `BEGIN; … COMMIT;` (common in golang-migrate folders) runs as if unwrapped,
 * in our own transaction, so the migration and its record commit together.
 * Any other transaction control is refused, naming the line, unless `mode` is
 * `file`: we could not otherwise say honestly what was committed when it
 * failed.
 */
export function analyse(
  text: string,
  file: string,
  mode: TransactionMode = "migration",
  split: Split = splitStatements,
): Script {
  const parsed = split(text, file);
  const kinds = parsed.map(transactionKind);
  const wrapped =
    parsed.length >= 2 &&
    (kinds[0] === "TRANS_STMT_BEGIN" || kinds[0] === "TRANS_STMT_START") &&
    kinds.at(-1) === "TRANS_STMT_COMMIT" &&
    kinds.slice(1, -1).every((k) => k === undefined);
  const statements = wrapped ? parsed.slice(1, -1) : parsed;
  if (mode === "file" && !wrapped && kinds.some((k) => k !== undefined)) {
    checkBlocks(statements, file);
    const indexes = statements.flatMap((st) => concurrentIndex(st, file));
    return { statements, transactional: false, indexes, ownTransactions: true };
  }
  for (const st of statements) {
    const kind = transactionKind(st);
    if (kind) {
      throw new ScriptRefusedError(
        file,
        st.line,
        `transaction control (${kind.replace("TRANS_STMT_", "")}) inside a migration is refused: ` +
          "each migration already runs in its own transaction (a file wrapped whole in BEGIN … COMMIT is accepted); " +
          "split the file, or, if this folder's files manage their own transactions as golang-migrate runs them, " +
          "run with --transactions=file",
      );
    }
  }
  const indexes = statements.flatMap((st) => concurrentIndex(st, file));
  const marked = text.split("\n", 1)[0]!.trim() === NO_TRANSACTION_MARKER;
  const outside = statements.find((st) => outsideTransaction(st.node));
  const transactional = !marked && indexes.length === 0 && outside === undefined;
  if (wrapped && !transactional) {
    const first = statements.find(
      (st) => outsideTransaction(st.node) || concurrentIndex(st, file).length > 0,
    );
    throw new ScriptRefusedError(
      file,
      (first ?? parsed[0]!).line,
      "this statement cannot run in a transaction, but the file is wrapped in BEGIN … COMMIT: " +
        "remove the wrapper (it then runs statement by statement) or move the statement to its own migration",
    );
  }
  return { statements, transactional, indexes };
}

// A file running its own transactions must close each block it opens (else
// our record would land inside it) and not open one inside another.
function checkBlocks(statements: Statement[], file: string): void {
  let open: Statement | undefined;
  for (const st of statements) {
    const kind = transactionKind(st);
    if (kind === "TRANS_STMT_BEGIN" || kind === "TRANS_STMT_START") {
      if (open) {
        throw new ScriptRefusedError(
          file,
          st.line,
          `BEGIN inside the transaction opened at line ${open.line}: close that one first`,
        );
      }
      open = st;
    } else if (kind === "TRANS_STMT_COMMIT" || kind === "TRANS_STMT_ROLLBACK") {
      open = undefined;
    } else if (kind?.includes("PREPARE") || kind?.includes("PREPARED")) {
      throw new ScriptRefusedError(file, st.line, "two-phase commit in a migration is refused");
    }
  }
  if (open) {
    throw new ScriptRefusedError(
      file,
      open.line,
      "the transaction opened here is never closed: add COMMIT before the end of the file",
    );
  }
}

/** The kind of a transaction control statement (TRANS_STMT_BEGIN, …), else undefined. */
export function transactionKind(st: Statement): string | undefined {
  const body = st.node.TransactionStmt as Node | undefined;
  return body ? String(body.kind) : undefined;
}

function concurrentIndex(st: Statement, file: string): IndexTarget[] {
  const [kind, body] = Object.entries(st.node)[0] as [string, Node];
  switch (kind) {
    case "IndexStmt":
      if (!body.concurrent) return [];
      if (typeof body.idxname !== "string") {
        throw new ScriptRefusedError(
          file,
          st.line,
          "CREATE INDEX CONCURRENTLY needs an index name here, so that an interrupted build can be found, dropped and built again",
        );
      }
      return [{ table: qualified(body.relation as Node), creates: body.idxname }];
    case "DropStmt":
      if (!body.concurrent) return [];
      return ((body.objects as Node[] | undefined) ?? []).map((o) => ({
        index: ((o.List as Node).items as Node[])
          .map((i) => quote(String((i.String as Node).sval)))
          .join("."),
      }));
    case "ReindexStmt": {
      const params = (body.params as Node[] | undefined) ?? [];
      if (!params.some((p) => (p.DefElem as Node | undefined)?.defname === "concurrently"))
        return [];
      const target = qualified(body.relation as Node | undefined);
      return body.kind === "REINDEX_OBJECT_INDEX" ? [{ index: target }] : [{ table: target }];
    }
    default:
      return [];
  }
}

function qualified(relation: Node | undefined): string | undefined {
  if (!relation?.relname) return undefined;
  const parts = [relation.schemaname, relation.relname].filter((p) => typeof p === "string");
  return parts.map((p) => quote(p as string)).join(".");
}

/** An identifier as PostgreSQL would print it quoted. */
export function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}
