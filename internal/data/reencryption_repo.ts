import type pg from "pg";
import type {
  ReencryptionJob,
  ReencryptionRepo,
  ReencryptionState,
} from "../biz/reencryption_job.js";
import type { SealedWrites } from "../biz/sealed_store.js";
import { withTx } from "./tx.js";
import { actorOf, SYSTEM_ACTOR, type AuditChain } from "../biz/kms/audit_chain.js";
import { background } from "../biz/context.js";
import { ADVISORY_LOCKS } from "./advisory_locks.js";
import { recordKeyChange } from "./key_changes.js";
import { databaseBusy, exclusively } from "./job_lock.js";
import { progressOf, type ProgressRow } from "./job_progress.js";

const JOB_LOCK = ADVISORY_LOCKS.reencryptionJob;

interface Row extends ProgressRow {
  state: ReencryptionState;
  generation: number;
  below_version: number | null;
  target_version: number;
  cursor_id: number;
  batch_size: number;
  pause_ms: number;
}

const toJob = (r: Row): ReencryptionJob => ({
  state: r.state,
  generation: r.generation,
  belowVersion: r.below_version ?? undefined,
  targetVersion: r.target_version,
  cursorId: r.cursor_id,
  batchSize: r.batch_size,
  pauseMs: r.pause_ms,
  ...progressOf(r),
});

/** Whether `found` is still the job, pass and position `read` was taken at. */
const sameRun = (found: ReencryptionJob | undefined, read: ReencryptionJob) =>
  found?.state === "running" &&
  found.generation === read.generation &&
  found.targetVersion === read.targetVersion &&
  found.cursorId === read.cursorId;

/**
 * biz.ReencryptionRepo on kms_reencryption, moving the values of the store
 * `inTx` opens in a batch's transaction; starts, stops and the end of a job
 * are audited in their transactions. The job's lock is held on a connection
 * of `direct` (Data.direct).
 */
export function newReencryptionRepo(
  pool: pg.Pool,
  audit: AuditChain,
  inTx: (c: pg.PoolClient) => SealedWrites,
  direct: pg.Pool,
): ReencryptionRepo {
  const job = async (client: pg.Pool | pg.PoolClient = pool, lock = "") => {
    const { rows } = await client.query<Row>(`SELECT * FROM kms_reencryption WHERE id = 1 ${lock}`);
    return rows[0] ? toJob(rows[0]) : undefined;
  };
  return {
    job: () => job(),

    start: (opts, ctx = background) =>
      withTx(
        pool,
        async (c) => {
          // One statement: of two instances asked at once, the second finds the
          // first's job running (its WHERE fails on the row the first wrote).
          const { rows } = await c.query<Row>(
            `INSERT INTO kms_reencryption (id, state, below_version, target_version, batch_size, pause_ms)
           VALUES (1, 'running', $1, $2, $3, $4)
           ON CONFLICT (id) DO UPDATE SET state = 'running', generation = kms_reencryption.generation + 1,
             below_version = $1, target_version = $2,
             batch_size = $3, pause_ms = $4, cursor_id = 0, rows_done = 0, rows_failed = 0,
             last_error = NULL, started_at = now(), updated_at = now(), finished_at = NULL
           WHERE kms_reencryption.state <> 'running'
           RETURNING *`,
            [opts.belowVersion ?? null, opts.targetVersion, opts.batchSize, opts.pauseMs],
          );
          if (!rows[0]) return { job: (await job(c))!, started: false };
          await recordKeyChange(c, audit, {
            kind: "reencryption_started",
            actor: actorOf(ctx),
            details: {
              target_version: String(opts.targetVersion),
              ...(opts.belowVersion !== undefined && { below_version: String(opts.belowVersion) }),
            },
          });
          return { job: toJob(rows[0]), started: true };
        },
        ctx,
      ),

    stop: (ctx = background) =>
      withTx(
        pool,
        async (c) => {
          const { rows } = await c.query<Row>(
            `UPDATE kms_reencryption SET state = 'stopped', updated_at = now()
            WHERE id = 1 AND state = 'running' RETURNING *`,
          );
          if (rows[0]) {
            await recordKeyChange(c, audit, {
              kind: "reencryption_stopped",
              actor: actorOf(ctx),
              details: { rows_done: rows[0].rows_done, rows_failed: rows[0].rows_failed },
            });
          }
          return rows[0] ? toJob(rows[0]) : job(c);
        },
        ctx,
      ),

    commitBatch: (batch) =>
      withTx(pool, async (c) => {
        // Only into the job and the pass it was read for, from where it was read.
        const found = await job(c, "FOR UPDATE");
        if (!sameRun(found, batch.read)) return { running: false, moved: 0 };
        const moved = await inTx(c).move(batch.moves);
        await c.query(
          `UPDATE kms_reencryption SET cursor_id = $1, rows_done = rows_done + $2,
             rows_failed = rows_failed + $3, last_error = coalesce($4, last_error), updated_at = now()
           WHERE id = 1`,
          [batch.lastId, moved, batch.failed, batch.lastError ?? null],
        );
        return { running: true, moved };
      }),

    finish: (read) =>
      withTx(pool, async (c) => {
        const { rows } = await c.query<Row>(
          `UPDATE kms_reencryption SET state = 'finished', finished_at = now(), updated_at = now()
            WHERE id = 1 AND state = 'running' AND generation = $1 AND cursor_id = $2
              AND target_version = $3
              -- Rotated meanwhile: not finished, the next step starts a new pass.
              AND target_version = (SELECT version FROM kms_data_keys WHERE status = 'active')
            RETURNING *`,
          [read.generation, read.cursorId, read.targetVersion],
        );
        if (!rows[0]) return false;
        await recordKeyChange(c, audit, {
          kind: "reencryption_finished",
          actor: SYSTEM_ACTOR,
          details: {
            target_version: String(rows[0].target_version),
            rows_done: rows[0].rows_done,
            rows_failed: rows[0].rows_failed,
          },
        });
        return true;
      }),

    async retarget(read, targetVersion) {
      await pool.query(
        `UPDATE kms_reencryption SET target_version = $4, cursor_id = 0, updated_at = now()
          WHERE id = 1 AND state = 'running' AND generation = $1 AND cursor_id = $2
            AND target_version = $3`,
        [read.generation, read.cursorId, read.targetVersion, targetVersion],
      );
    },

    exclusively: (work) => exclusively(direct, JOB_LOCK, work),
    busy: () => databaseBusy(pool),
  };
}
