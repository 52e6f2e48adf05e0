import type pg from "pg";
import type { Script } from "./analyse.js";
import type { Session } from "./blockers.js";
import { cancelledBy } from "./cancel.js";
import { chunk, countCompletions, failure, type Chunk, type StepFailure } from "./failure.js";
import { clearInvalidIndexes, indexCheckStatement, invalidLeft } from "./indexes.js";
import type { Step } from "./plan.js";
import type { LockAttempt } from "./retry.js";
import { recordStatement } from "./state.js";

export type { Outcome, StepFailure } from "./failure.js";

/** A step that ran: how long it took. */
export interface StepResult {
  name: string;
  direction: "up" | "down";
  file: string;
  ms: number;
  /** INVALID indexes left by an interrupted earlier attempt, dropped before this one. */
  dropped: string[];
  /** Earlier tries refused by lock_timeout, with who held the lock. */
  lockAttempts?: LockAttempt[];
  /** Time those refused tries and the pauses between them took (0 without any). */
  lockRetryMs?: number;
  /** Transactions older than the threshold that its concurrent index build waited for. */
  oldTransactions?: Session[];
  /** Its batched backfills (backfill/run.ts), each as it finished in this run. */
  backfills?: BackfillResult[];
}

/** A backfill that finished: its table, what this run filled, and how fast. */
export interface BackfillResult {
  table: string;
  /** Rows this run changed (a resumed backfill's earlier rows not counted). */
  rows: number;
  batches: number;
  ms: number;
  rowsPerSecond: number;
  /** Began by an earlier run that stopped: this one went on from its cursor. */
  resumed: boolean;
}

/** A statement of a file run statement by statement, not begun after the signal. */
class NotBegunError extends Error {
  override name = "NotBegunError";
}

/**
 * Runs one step and records it in pgmigrations, the record being its last
 * statement: it lands with the migration or not at all.
 *
 * A transactional file goes as one multi-statement query, BEGIN, the file,
 * the record, COMMIT: one round trip per migration; counting PostgreSQL's
 * per-statement completions still names the failing line. A file that cannot
 * run in a transaction goes statement by statement; its concurrent index
 * builds are checked by a last statement, before the record.
 */
export async function applyStep(
  client: pg.Client,
  s: Step,
  script: Script,
  replyTimeoutMs: (statements: number) => number | undefined = () => undefined,
  /** The statement that ends it: its record, or (a backfill's head) the backfill's start. */
  record: string = recordStatement(s),
  /** Stops a file run statement by statement before its next statement. */
  signal?: AbortSignal,
): Promise<{ ok: StepResult } | { failed: StepFailure }> {
  const started = performance.now();
  const completions = countCompletions(client);
  let dropped: string[] = [];
  let invalidBefore: number[] | undefined;
  // What went to the server, one entry per query, in order.
  const sent: Chunk[] = [];
  try {
    if (script.transactional) {
      // A file opening with SET TRANSACTION finds it first after BEGIN, as it must.
      const whole = chunk(["BEGIN", ...script.statements, record, "COMMIT"], script);
      sent.push(whole);
      completions.reset();
      // The server bounds each statement of a multi-statement query, so the
      // client's wait grows with their number.
      const query_timeout = replyTimeoutMs(whole.statements.length);
      await client.query({ text: whole.sql, ...(query_timeout ? { query_timeout } : {}) });
    } else {
      const cleared = await clearInvalidIndexes(client, script.indexes);
      dropped = cleared.dropped;
      invalidBefore = cleared.invalidBefore;
      const chunks = [
        ...script.statements.map((st) => chunk([st], script)),
        ...(script.indexes.length > 0
          ? [chunk([indexCheckStatement(script.indexes, cleared.invalidBefore)], script)]
          : []),
        chunk([record], script),
      ];
      for (const [i, c] of chunks.entries()) {
        sent.push(c);
        completions.reset();
        // The signal's cancel may miss (it reaches the server between two
        // statements, or cannot connect): no statement of the file starts
        // after it. The index check and the record still run once every
        // statement did: stopping there would leave it applied, unrecorded.
        if (signal?.aborted && i < script.statements.length)
          throw new NotBegunError(`stopped by ${String(signal.reason)} before this statement`);
        await client.query(c.sql);
      }
    }
  } catch (err) {
    const failed = failure(s, script, sent, completions.count(), err, dropped);
    if (err instanceof NotBegunError || cancelledBy(err, signal, client)) failed.stopped = true;
    // A failed transaction stays open (aborted) until told otherwise; so does
    // one the file opened.
    if (script.transactional || script.ownTransactions)
      await client.query("ROLLBACK").catch(() => undefined);
    if (invalidBefore && !failed.connectionLost) {
      const left = await invalidLeft(client, script.indexes, invalidBefore);
      if (left.length > 0) failed.leftInvalid = left;
    }
    return { failed };
  } finally {
    completions.stop();
  }
  const ms = Math.round(performance.now() - started);
  return { ok: { name: s.name, direction: s.direction, file: s.file, ms, dropped } };
}
