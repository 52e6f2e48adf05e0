import { setTimeout as wait } from "node:timers/promises";
import { sqlstateOf } from "../../pkg/dberr/dberr.js";
import type pg from "pg";
import type { Script } from "../analyse.js";
import { quote } from "../analyse.js";
import type { BackfillResult, StepFailure, StepResult } from "../apply.js";
import { isConnectionLost } from "../connect.js";
import { emit } from "../events.js";
import type { LockWatch } from "../lock_watch.js";
import type { MigratorOptions } from "../options.js";
import type { Step } from "../plan.js";
import { cancelledBy } from "../cancel.js";
import { applyPatiently, backoffMs, LOCK_NOT_AVAILABLE } from "../retry.js";
import { recordStatement } from "../state.js";
import { literal, type Backfill } from "./declare.js";
import {
  advanceStatement,
  beginStatement,
  ensureBackfillTable,
  finishStatement,
  nextStageStatement,
  readBackfills,
  stepHash,
  type BackfillProgress,
} from "./progress_record.js";

type Result = { ok: StepResult } | { failed: StepFailure };

const DEADLOCK_DETECTED = "40P01";

/**
 * Runs a step whose file ends in backfills: its other statements in one
 * transaction that also records the backfill as begun; then each backfill
 * in ranges of its table's primary key, one transaction per range, the
 * cursor moving in the same transaction; then, in one last transaction, a
 * count that must find no row still to fill, and the migration's record. A
 * run stopped anywhere (a signal, a lost connection, a kill) leaves the
 * cursor at the last range committed: the next run (`up`, or `down` for a
 * down file's backfill) goes on from there.
 */
export async function applyBackfilled(
  opts: MigratorOptions,
  client: pg.Client,
  s: Step,
  script: Script,
  fills: Backfill[],
  watch: LockWatch,
  signal?: AbortSignal,
): Promise<Result> {
  const started = performance.now();
  await ensureBackfillTable(client);
  const [begun] = await readBackfills(client, s.name);
  if (begun && (begun.hash !== stepHash(s) || begun.direction !== s.direction))
    return { failed: fault(s, fills[0]!, edited(s, begun)) };
  let from = begun;
  if (!from) {
    const head = { ...script, statements: script.statements.slice(0, fills[0]!.index) };
    const r = await applyPatiently(opts, client, s, head, watch, signal, beginStatement(s));
    if ("failed" in r) return r;
    from = { stage: 0, cursor: null } as BackfillProgress;
  } else
    opts.log.info(
      { migration: s.name, stage: from.stage, rowsBefore: Number(from.rows) },
      "resuming a backfill where an earlier run stopped",
    );
  const results: BackfillResult[] = [];
  let current = fills[from.stage] ?? fills[0]!;
  const at = { cursor: from.cursor };
  try {
    for (let i = from.stage; i < fills.length; i++) {
      current = fills[i]!;
      if (i !== from.stage) at.cursor = null;
      const r = await fill(opts, client, s, current, i, at, signal, begun !== undefined);
      if ("failed" in r) return r;
      results.push(r.ok);
      if (i + 1 < fills.length) await client.query(nextStageStatement(s, i + 1));
    }
    const left = await finish(client, s, fills);
    if (left) return { failed: fault(s, left.fill, left.message) };
  } catch (err) {
    // Cancelled by the signal: a stop, said as one. Any other failure of a
    // query of ours (the key, a count, a range) is the step's, reported and
    // recorded like any other, its cursor where it was.
    if (cancelledBy(err, signal, client))
      return { failed: stopped(s, current, standing(at.cursor), signal!) };
    return { failed: fault(s, current, (err as Error).message, err) };
  }
  return {
    ok: {
      name: s.name,
      direction: s.direction,
      file: s.file,
      ms: Math.round(performance.now() - started),
      dropped: [],
      backfills: results,
    },
  };
}

/**
 * One backfill from `at.cursor` to the table's last key, range by range;
 * `at.cursor` follows the last range committed.
 */
async function fill(
  opts: MigratorOptions,
  client: pg.Client,
  s: Step,
  b: Backfill,
  stage: number,
  at: { cursor: string | null },
  signal: AbortSignal | undefined,
  resumed: boolean,
): Promise<{ ok: BackfillResult } | { failed: StepFailure }> {
  const started = performance.now();
  const key = await primaryKey(client, b.table);
  if (!key)
    return {
      failed: fault(
        s,
        b,
        `${b.table} has no single-column primary key to walk in ranges: a backfill needs one`,
      ),
    };
  const after = (cursor: string | null) =>
    cursor === null ? "" : `AND ${key} > ${literal(cursor)}`;
  const remaining = Number(
    (
      await client.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM ${b.table} WHERE (${b.pending}) ${after(at.cursor)}`,
      )
    ).rows[0]!.n,
  );
  let rows = 0;
  let batches = 0;
  let shown = 0;
  const report = (final: boolean) => {
    const ms = performance.now() - started;
    if (!final && ms - shown < 1000) return;
    shown = ms;
    emit(opts, {
      event: "backfill_progress",
      name: s.name,
      table: b.table,
      rows,
      remaining: Math.max(0, remaining - rows),
      rowsPerSecond: ms > 0 ? Math.round((rows * 1000) / ms) : 0,
      batches,
    });
  };
  report(true);
  for (;;) {
    if (signal?.aborted) return { failed: stopped(s, b, standing(at.cursor), signal) };
    // The range's last key; not max(): uuid and bytea have none.
    const bound = await client.query<{ hi: string }>(
      `SELECT k::text AS hi FROM (SELECT ${key} AS k FROM ${b.table}
        WHERE true ${after(at.cursor)} ORDER BY ${key} LIMIT ${b.options.batch}) AS range
        ORDER BY k DESC LIMIT 1`,
    );
    const hi = bound.rows[0]?.hi;
    if (hi === undefined) break;
    const done = await batch(opts, client, s, b, stage, key, at.cursor, hi, signal);
    if (typeof done !== "number") return { failed: done };
    rows += done;
    batches++;
    at.cursor = hi;
    report(false);
    if (b.options.pauseMs > 0)
      await wait(b.options.pauseMs, undefined, { signal }).catch(() => undefined);
  }
  report(true);
  const ms = Math.round(performance.now() - started);
  const rowsPerSecond = ms > 0 ? Math.round((rows * 1000) / ms) : 0;
  emit(opts, { event: "backfill_finished", name: s.name, table: b.table, rows, batches, ms });
  opts.log.info(
    { migration: s.name, table: b.table, rows, batches, ms, rowsPerSecond },
    "backfilled",
  );
  return { ok: { table: b.table, rows, batches, ms, rowsPerSecond, resumed } };
}

/**
 * One range in its own transaction, with the cursor; refused by
 * lock_timeout, tried again after a pause as many times as the migration's
 * own statements are. The rows it changed, or the failure.
 */
async function batch(
  opts: MigratorOptions,
  client: pg.Client,
  s: Step,
  b: Backfill,
  stage: number,
  key: string,
  lower: string | null,
  upper: string,
  signal: AbortSignal | undefined,
): Promise<number | StepFailure> {
  const timeout = b.options.lockTimeoutMs;
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) return stopped(s, b, standing(lower), signal);
    try {
      await client.query(
        `BEGIN${timeout === undefined ? "" : `; SET LOCAL lock_timeout = ${timeout}`}`,
      );
      // A cancel that reached the server between the two queries missed:
      // the range does not start after the signal.
      if (signal?.aborted) {
        await client.query("ROLLBACK");
        return stopped(s, b, standing(lower), signal);
      }
      const changed = await client.query(
        b.batch(key, lower === null ? null : literal(lower), literal(upper)),
      );
      const n = changed.rowCount ?? 0;
      await client.query(`${advanceStatement(s, stage, upper, n)}; COMMIT`);
      return n;
    } catch (err) {
      if (!isConnectionLost(err)) await client.query("ROLLBACK").catch(() => undefined);
      // Cancelled by the signal: the range rolled back, the cursor stays at
      // the last range committed.
      if (cancelledBy(err, signal, client)) return stopped(s, b, standing(lower), signal!);
      const code = (err as { code?: string }).code;
      // A range rolled back whole: refused by lock_timeout or chosen as a
      // deadlock's victim, it may be tried again.
      const retryable = code === LOCK_NOT_AVAILABLE || code === DEADLOCK_DETECTED;
      if (!retryable || attempt >= opts.lockAttempts)
        return { ...fault(s, b, (err as Error).message, err), lockAttempts: [] };
      const retryInMs = backoffMs(attempt);
      opts.log.warn(
        { migration: s.name, table: b.table, attempt, of: opts.lockAttempts, retryInMs },
        "a backfill batch was refused (lock_timeout or a deadlock): trying it again",
      );
      await wait(retryInMs, undefined, { signal }).catch(() => undefined);
    }
  }
}

/**
 * The last transaction: no row may still match a backfill's WHERE (rows the
 * previous release wrote meanwhile are filled by the file's trigger, or
 * here they show), then the record. The backfill that left rows, else undefined.
 */
async function finish(
  client: pg.Client,
  s: Step,
  fills: Backfill[],
): Promise<{ fill: Backfill; message: string } | undefined> {
  await client.query("BEGIN");
  try {
    for (const b of fills) {
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM ${b.table} WHERE (${b.pending})`,
      );
      const n = Number(rows[0]!.n);
      if (n > 0) {
        await client.query("ROLLBACK");
        // Rows behind the cursor (written below it, a key moved down): the
        // next run walks this backfill from the start; its WHERE keeps a
        // filled row from being filled again.
        await client.query(nextStageStatement(s, fills.indexOf(b)));
        return {
          fill: b,
          message: `${n} row(s) of ${b.table} still match the backfill's WHERE after it ran: its SET must make each row it changes stop matching (and a trigger fill rows written meanwhile); the migration is not recorded, and \`migrate ${s.direction}\` walks the table again`,
        };
      }
    }
    await client.query(`${finishStatement(s)}; ${recordStatement(s)}; COMMIT`);
    return undefined;
  } catch (err) {
    if (!isConnectionLost(err)) await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  }
}

async function primaryKey(client: pg.ClientBase, table: string): Promise<string | undefined> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT a.attname AS name FROM pg_index i
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
      WHERE i.indrelid = $1::regclass AND i.indisprimary AND i.indnkeyatts = 1`,
    [table],
  );
  return rows[0] ? quote(rows[0].name) : undefined;
}

/** A backfill's failure: its statement's line; the statements before it committed. */
function fault(s: Step, b: Backfill, message: string, err?: unknown): StepFailure {
  return {
    name: s.name,
    direction: s.direction,
    at: `${s.file}:${b.statement.line}`,
    message,
    code: sqlstateOf(err),
    transactional: false,
    statementsApplied: b.index,
    dropped: [],
    connectionLost: err !== undefined && isConnectionLost(err),
  };
}

/** Where a stop at `cursor` leaves a backfill. */
function standing(cursor: string | null): string {
  return cursor === null ? "before its first range" : "after the last range committed";
}

function stopped(s: Step, b: Backfill, where: string, signal: AbortSignal): StepFailure {
  const message = `stopped by ${String(signal.reason)} ${where}: \`migrate ${s.direction}\` goes on from there`;
  return { ...fault(s, b, message), stoppedInBackfill: true, stopped: true };
}

function edited(s: Step, begun: BackfillProgress): string {
  return `its backfill was begun ${begun.startedAt.toISOString()} (${begun.direction}) from another text of this file, and ${begun.rows} row(s) filled: restore the file as it was to finish it, or undo its schema changes by hand and DELETE FROM public.migrate_backfills WHERE migration = '${s.name}'`;
}
