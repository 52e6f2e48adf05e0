import type pg from "pg";
import { sqlstateOf } from "../pkg/dberr/dberr.js";
import { transactionKind, type Script } from "./analyse.js";
import { isConnectionLost } from "./connect.js";
import type { Session } from "./blockers.js";
import type { Step } from "./plan.js";
import type { LockAttempt } from "./retry.js";
import { lineAt, type Statement } from "./sql.js";

// How a failed step is told: which line of its file failed, counted from the
// statements PostgreSQL completed, and what of the file stays applied.

/** The step that failed: where, PostgreSQL's words, and what it left. */
export interface StepFailure {
  name: string;
  direction: "up" | "down";
  /** `file:line` of the failing statement, or the file when unknown. */
  at: string;
  /** PostgreSQL's message (or the client's). */
  message: string;
  /** SQLSTATE, when PostgreSQL answered. */
  code: string | undefined;
  /** Rolled back whole (transactional), or statements before the failing one stay applied. */
  transactional: boolean;
  statementsApplied: number;
  dropped: string[];
  /**
   * The connection failed, not a statement: whether the statement in flight
   * (a COMMIT, say) took effect is unknown until `outcome` is read back.
   */
  connectionLost: boolean;
  /** What a new connection found afterwards; set only when the connection was lost. */
  outcome?: Outcome;
  /**
   * A file running its own transactions: `file:line` of the last statement
   * whose effect is final (committed, or rolled back by the file itself), and
   * of the BEGIN whose transaction the failure rolled back.
   */
  ownTransactions?: { finalThrough: string | null; rolledBackFrom: string | null };
  /** Refused by lock_timeout (55P03): each try, with who held the lock as last seen while it waited. */
  lockAttempts?: LockAttempt[];
  /** Why it was not tried again after the last refusal. */
  notRetried?: string;
  /** Transactions older than the threshold, named before its concurrent index build. */
  oldTransactions?: Session[];
  /** Refused before its first statement (old transactions, --old-transactions=refuse): nothing of it ran. */
  notStarted?: true;
  /**
   * Stopped by a signal in its backfill: what ran before the backfill and
   * every range committed stay, the cursor with them; the next run goes on.
   */
  stoppedInBackfill?: true;
  /**
   * Ended by the run's signal: our cancel (57014 after it), a statement or
   * retry not begun after it, a backfill stopped. A stop, not a failure of
   * its own: not recorded in migrate_failures, and the exit is 130/143.
   */
  stopped?: true;
  /** INVALID indexes its concurrent builds left (they take writes, enforce nothing; the next up drops and rebuilds them). */
  leftInvalid?: string[];
}

/**
 * Read back after a lost connection: whether the migration is recorded
 * (recorded only with its last statement), or why that could not be told.
 */
export type Outcome = { recorded: boolean } | { unknown: string };

/** SQL sent as one query, and which file statement each of its statements is (-1: ours). */
export interface Chunk {
  sql: string;
  statements: { index: number; offset: number }[];
}

/** Statements (the file's, or ours as text) as one query. */
export function chunk(parts: (string | Statement)[], script: Script): Chunk {
  let sql = "";
  const statements: Chunk["statements"] = [];
  for (const part of parts) {
    const text = typeof part === "string" ? part : part.sql;
    statements.push({
      index: typeof part === "string" ? -1 : script.statements.indexOf(part),
      offset: sql.length,
    });
    // The semicolon on its own line: a statement may end in a -- comment.
    sql += `${text}\n;\n`;
  }
  return { sql: sql.trimEnd(), statements };
}

/** Counts the statements PostgreSQL completes, per query (pg reports each of a multi-statement query). */
export function countCompletions(client: pg.Client) {
  let completed = 0;
  const protocol = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  const onComplete = () => completed++;
  protocol.on("commandComplete", onComplete);
  return {
    count: () => completed,
    reset: () => {
      completed = 0;
    },
    stop: () => protocol.off("commandComplete", onComplete),
  };
}

/** The failure of `s`, from the chunks sent (the last one failed) after `completed` of its statements. */
export function failure(
  s: Step,
  script: Script,
  sent: Chunk[],
  completed: number,
  err: unknown,
  dropped: string[],
): StepFailure {
  const e = err as Error & { position?: string; code?: string };
  const fileStatements = (entries: Chunk["statements"]) =>
    entries.filter((x) => x.index >= 0).length;
  let at = s.file;
  let applied = 0;
  const last = sent.at(-1);
  if (last) {
    // The statement that failed is the one after those that completed.
    const i = Math.min(completed, last.statements.length - 1);
    const failing = last.statements[i]!;
    applied =
      sent.slice(0, -1).reduce((n, c) => n + fileStatements(c.statements), 0) +
      fileStatements(last.statements.slice(0, i));
    const st = script.statements[failing.index];
    if (st) {
      const position = e.position ? Number(e.position) - 1 - failing.offset : -1;
      const inStatement = position >= 0 ? lineAt(st.sql, position) - 1 : 0;
      at = `${s.file}:${st.line + inStatement}`;
    }
  }
  const own = script.ownTransactions ? ownOutcome(s, script, applied) : undefined;
  return {
    name: s.name,
    direction: s.direction,
    at,
    message: e.message,
    code: sqlstateOf(err),
    transactional: script.transactional,
    statementsApplied: script.transactional ? 0 : (own?.committed ?? applied),
    dropped,
    connectionLost: isConnectionLost(err),
    ...(own ? { ownTransactions: own.where } : {}),
  };
}

/**
 * Of a file running its own transactions, the first `completed` statements
 * completed: those outside its blocks committed one by one, those inside a
 * block only if its COMMIT completed; a block still open was rolled back.
 */
function ownOutcome(s: Step, script: Script, completed: number) {
  let committed = 0;
  let inBlock = 0;
  let open: Statement | undefined;
  let final: Statement | undefined;
  for (const st of script.statements.slice(0, completed)) {
    const kind = transactionKind(st);
    if (kind === "TRANS_STMT_BEGIN" || kind === "TRANS_STMT_START") {
      open = st;
      inBlock = 0;
    } else if (kind === "TRANS_STMT_COMMIT" || kind === "TRANS_STMT_ROLLBACK") {
      if (kind === "TRANS_STMT_COMMIT" && open) committed += inBlock;
      open = undefined;
      final = st;
    } else if (kind) {
      // SAVEPOINT, RELEASE, ROLLBACK TO: inside the block, nothing final yet.
    } else if (open) inBlock++;
    else {
      committed++;
      final = st;
    }
  }
  const where = (st: Statement | undefined) => (st ? `${s.file}:${st.line}` : null);
  return { committed, where: { finalThrough: where(final), rolledBackFrom: where(open) } };
}
