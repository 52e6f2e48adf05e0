import type pg from "pg";
import type {
  IndexRotationJob,
  IndexRotationPhase,
  IndexRotationRepo,
  IndexRotationState,
} from "../biz/index_rotation_job.js";
import { otherSlot as other, type SealedWrites } from "../biz/sealed_store.js";
import { kmsErrors } from "../biz/kms/errors.js";
import { actorOf, SYSTEM_ACTOR, type AuditChain } from "../biz/kms/audit_chain.js";
import { background } from "../biz/context.js";
import { fingerprint } from "../pkg/kms/wrap.js";
import { withTx } from "./tx.js";
import { ADVISORY_LOCKS } from "./advisory_locks.js";
import { recordKeyChange } from "./key_changes.js";
import { databaseBusy, exclusively } from "./job_lock.js";
import { progressOf, type ProgressRow } from "./job_progress.js";

const {
  keyRotation: ROTATE_LOCK,
  indexKeys: INDEX_LOCK,
  indexRotationJob: JOB_LOCK,
} = ADVISORY_LOCKS;

interface Row extends ProgressRow {
  phase: IndexRotationPhase;
  state: IndexRotationState;
  to_slot: number;
  epoch: number;
  cursor_id: number;
  batch_size: number;
  pause_ms: number;
  switched_at: Date | null;
}

const toJob = (r: Row): IndexRotationJob => ({
  phase: r.phase,
  state: r.state,
  toSlot: r.to_slot === 1 ? 1 : 0,
  epoch: r.epoch,
  cursorId: r.cursor_id,
  batchSize: r.batch_size,
  pauseMs: r.pause_ms,
  switchedAt: r.switched_at ?? undefined,
  ...progressOf(r),
});

/** Whether `found` is still the job, phase and position `read` was taken at. */
const samePlace = (found: IndexRotationJob | undefined, read: IndexRotationJob) =>
  found?.state === "running" &&
  found.phase === read.phase &&
  found.epoch === read.epoch &&
  found.cursorId === read.cursorId;

/**
 * biz.IndexRotationRepo on kms_index_keys and kms_index_rotation, filling
 * and clearing the indexes of the store `inTx` opens in a batch's transaction.
 * The job's lock is held on a connection of `direct` (Data.direct).
 */
export function newIndexRotationRepo(
  pool: pg.Pool,
  audit: AuditChain,
  inTx: (c: pg.PoolClient) => SealedWrites,
  direct: pg.Pool,
): IndexRotationRepo {
  const job = async (client: pg.Pool | pg.PoolClient = pool, lock = "") => {
    const { rows } = await client.query<Row>(
      `SELECT * FROM kms_index_rotation WHERE id = 1 ${lock}`,
    );
    return rows[0] ? toJob(rows[0]) : undefined;
  };
  return {
    job: () => job(),

    begin: (make, policy, ctx = background) =>
      withTx(
        pool,
        async (c) => {
          // Asked again while one runs (a deploy script's retry): answered
          // without a lock that would hold every write of an index.
          const running = await job(c);
          if (running?.state === "running") return { job: running, started: false };
          const missing = await inTx(c).missingIndexes();
          if (missing.length > 0) throw kmsErrors.indexesNotReady(missing);
          // The new key is wrapped under the recorded root key: no root-key
          // rotation meanwhile. Then no write of an index is in flight. The
          // job's row after the index lock, in the order every batch takes them.
          await c.query("SELECT pg_advisory_xact_lock($1)", [ROTATE_LOCK]);
          await c.query("SELECT pg_advisory_xact_lock($1)", [INDEX_LOCK]);
          const found = await job(c, "FOR UPDATE");
          if (found?.state === "running") return { job: found, started: false };
          if (found?.state === "failed") {
            const { rows } = await c.query<Row>(
              `UPDATE kms_index_rotation SET state = 'running', cursor_id = 0, rows_failed = 0,
                 last_error = NULL, batch_size = $1, pause_ms = $2, updated_at = now()
               WHERE id = 1 RETURNING *`,
              [policy.batchSize, policy.pauseMs],
            );
            return { job: toJob(rows[0]!), started: true };
          }
          const root = await c.query<{ key_id: string }>(
            "SELECT key_id FROM kms_root_key WHERE id = 1",
          );
          const wrapped = make(root.rows[0]?.key_id);
          const keys = await c.query<{ epoch: number; slot: number }>(
            `UPDATE kms_index_keys SET next_encrypted_key = $1, next_key_hash = $2, epoch = epoch + 1
              WHERE id = 1 RETURNING epoch, slot`,
            [wrapped, fingerprint(wrapped)],
          );
          const { epoch, slot } = keys.rows[0]!;
          const { rows } = await c.query<Row>(
            `INSERT INTO kms_index_rotation (id, phase, state, to_slot, epoch, batch_size, pause_ms)
             VALUES (1, 'backfill', 'running', $1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET phase = 'backfill', state = 'running', to_slot = $1,
               epoch = $2, cursor_id = 0, rows_done = 0, rows_failed = 0, last_error = NULL,
               batch_size = $3, pause_ms = $4, started_at = now(), updated_at = now(),
               switched_at = NULL, finished_at = NULL
             RETURNING *`,
            [other(slot === 1 ? 1 : 0), epoch, policy.batchSize, policy.pauseMs],
          );
          await recordKeyChange(c, audit, {
            kind: "index_key_rotation_started",
            actor: actorOf(ctx),
            details: { epoch: String(epoch), to_slot: String(other(slot === 1 ? 1 : 0)) },
          });
          return { job: toJob(rows[0]!), started: true };
        },
        ctx,
      ),

    commitFill: (batch) =>
      withTx(pool, async (c) => {
        // The index lock before the job's row, as begin and the switch take them.
        await c.query("SELECT pg_advisory_xact_lock_shared($1)", [INDEX_LOCK]);
        const found = await job(c, "FOR UPDATE");
        if (!samePlace(found, batch.read)) return { running: false };
        const filled = await inTx(c).fill(batch.read.toSlot, batch.read.epoch, batch.fills);
        await c.query(
          `UPDATE kms_index_rotation SET cursor_id = $1, rows_done = rows_done + $2,
             rows_failed = rows_failed + $3, last_error = coalesce($4, last_error), updated_at = now()
           WHERE id = 1`,
          [batch.lastId, filled, batch.failed, batch.lastError ?? null],
        );
        return { running: true };
      }),

    switchKeys: (read) =>
      withTx(pool, async (c) => {
        // No write of an index in flight: every row counted below stays so.
        await c.query("SELECT pg_advisory_xact_lock($1)", [INDEX_LOCK]);
        const found = await job(c, "FOR UPDATE");
        if (!samePlace(found, read)) return { switched: false, missing: 0n };
        // Every row: ids are the table's SERIAL, from 1.
        const n = await inTx(c).countUnindexed(other(read.toSlot), 0);
        if (n > 0n) {
          await c.query(
            `UPDATE kms_index_rotation SET state = 'failed', updated_at = now(),
               last_error = $1 WHERE id = 1`,
            [
              `${n} user(s) have a value that could not be indexed under the new key (revoked data key or altered bytes; see the previous error): update or delete them, then RotateIndexKey again to resume`,
            ],
          );
          return { switched: false, missing: n };
        }
        const keys = await c.query<{ epoch: number }>(
          `UPDATE kms_index_keys SET encrypted_key = next_encrypted_key, key_hash = next_key_hash,
             next_encrypted_key = NULL, next_key_hash = NULL, slot = $1, epoch = epoch + 1
           WHERE id = 1 AND next_encrypted_key IS NOT NULL RETURNING epoch`,
          [read.toSlot],
        );
        const epoch = keys.rows[0]!.epoch;
        const { rows } = await c.query<Row>(
          `UPDATE kms_index_rotation SET phase = 'clear', epoch = $1, cursor_id = 0,
             switched_at = now(), updated_at = now() WHERE id = 1 RETURNING *`,
          [epoch],
        );
        await recordKeyChange(c, audit, {
          kind: "index_key_rotated",
          actor: SYSTEM_ACTOR,
          details: {
            epoch: String(epoch),
            slot: String(read.toSlot),
            rows_indexed: rows[0]!.rows_done,
          },
        });
        return { switched: true, missing: 0n };
      }),

    clearBatch: (read) =>
      withTx(pool, async (c) => {
        await c.query("SELECT pg_advisory_xact_lock_shared($1)", [INDEX_LOCK]);
        const found = await job(c, "FOR UPDATE");
        if (!samePlace(found, read)) return { running: false, done: false };
        const ids = await inTx(c).clear(
          other(read.toSlot),
          read.epoch,
          read.cursorId,
          read.batchSize,
        );
        if (ids.length === 0) {
          await c.query(
            `UPDATE kms_index_rotation SET phase = 'done', state = 'finished',
               finished_at = now(), updated_at = now() WHERE id = 1`,
          );
          return { running: true, done: true };
        }
        await c.query(
          "UPDATE kms_index_rotation SET cursor_id = $1, updated_at = now() WHERE id = 1",
          [Math.max(...ids)],
        );
        return { running: true, done: false };
      }),

    async fail(read, message) {
      await pool.query(
        `UPDATE kms_index_rotation SET state = 'failed', last_error = $4, updated_at = now()
          WHERE id = 1 AND state = 'running' AND phase = $1 AND epoch = $2 AND cursor_id = $3`,
        [read.phase, read.epoch, read.cursorId, message],
      );
    },

    exclusively: (work) => exclusively(direct, JOB_LOCK, work),
    busy: () => databaseBusy(pool),
  };
}
