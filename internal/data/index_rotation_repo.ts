import type pg from "pg";
import {
  IndexCollisionError,
  type IndexRotationJob,
  type IndexRotationPhase,
  type IndexRotationRepo,
  type IndexRotationState,
  type IndexedRow,
} from "../biz/index_rotation.js";
import type { Slot } from "../biz/kms/index_keys.js";
import { PII_FIELDS, type PiiField } from "../biz/user.js";
import { kmsErrors } from "../biz/kms/errors.js";
import { actorOf, SYSTEM_ACTOR, type AuditChain } from "../biz/kms/audit_chain.js";
import { background } from "../biz/context.js";
import { fingerprint } from "../pkg/kms/wrap.js";
import { withTx } from "./tx.js";
import { appendAudit } from "./audit_repo.js";
import { ADVISORY_LOCKS } from "./advisory_locks.js";
import { CHANNEL } from "./key_changes.js";
import { databaseBusy, exclusively } from "./background_job.js";

const {
  keyRotation: ROTATE_LOCK,
  indexKeys: INDEX_LOCK,
  indexRotationJob: JOB_LOCK,
} = ADVISORY_LOCKS;

interface Row {
  phase: IndexRotationPhase;
  state: IndexRotationState;
  to_slot: number;
  epoch: number;
  cursor_id: number;
  rows_done: string;
  rows_failed: string;
  last_error: string | null;
  batch_size: number;
  pause_ms: number;
  started_at: Date;
  updated_at: Date;
  switched_at: Date | null;
  finished_at: Date | null;
}

const toJob = (r: Row): IndexRotationJob => ({
  phase: r.phase,
  state: r.state,
  toSlot: r.to_slot === 1 ? 1 : 0,
  epoch: r.epoch,
  cursorId: r.cursor_id,
  rowsDone: BigInt(r.rows_done),
  rowsFailed: BigInt(r.rows_failed),
  lastError: r.last_error ?? undefined,
  batchSize: r.batch_size,
  pauseMs: r.pause_ms,
  startedAt: r.started_at,
  updatedAt: r.updated_at,
  switchedAt: r.switched_at ?? undefined,
  finishedAt: r.finished_at ?? undefined,
});

/** A field's index column in `slot` (biz.Slot; migration 000014). */
const column = (field: PiiField, slot: Slot) => (slot === 0 ? `${field}_hash` : `${field}_hash_b`);
const other = (slot: Slot): Slot => (slot === 0 ? 1 : 0);
/** Rows holding an index in `from` that the other slot lacks. */
const lacking = (from: Slot) =>
  PII_FIELDS.map(
    (f) => `(${column(f, from)} IS NOT NULL AND ${column(f, other(from))} IS NULL)`,
  ).join(" OR ");
const holding = (slot: Slot) =>
  PII_FIELDS.map((f) => `${column(f, slot)} IS NOT NULL`).join(" OR ");

/** The unique index of each index column, and the name index of each: what a rotation relies on. */
const REQUIRED_INDEXES = [
  "idx_users_email_hash_unique",
  "idx_users_phone_hash_unique",
  "idx_users_name_hash",
  "idx_users_email_hash_b_unique",
  "idx_users_phone_hash_b_unique",
  "idx_users_name_hash_b",
];

// An interrupted CONCURRENTLY build leaves an INVALID index that enforces
// nothing: uniqueness under the new key would silently be off.
async function indexesReady(c: pg.PoolClient): Promise<void> {
  const { rows } = await c.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
      WHERE c.relname = ANY ($1) AND i.indisvalid AND i.indrelid = 'users'::regclass`,
    [REQUIRED_INDEXES],
  );
  const valid = new Set(rows.map((r) => r.name));
  const missing = REQUIRED_INDEXES.filter((n) => !valid.has(n));
  if (missing.length > 0) throw kmsErrors.indexesNotReady(missing);
}

/** Whether `found` is still the job, phase and position `read` was taken at. */
const samePlace = (found: IndexRotationJob | undefined, read: IndexRotationJob) =>
  found?.state === "running" &&
  found.phase === read.phase &&
  found.epoch === read.epoch &&
  found.cursorId === read.cursorId;

/** biz.IndexRotationRepo on kms_index_keys, kms_index_rotation and the users' index columns. */
export function newIndexRotationRepo(pool: pg.Pool, audit: AuditChain): IndexRotationRepo {
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
          await indexesReady(c);
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
          await appendAudit(c, audit, {
            kind: "index_key_rotation_started",
            actor: actorOf(ctx),
            details: { epoch: String(epoch), to_slot: String(other(slot === 1 ? 1 : 0)) },
          });
          await c.query("SELECT pg_notify($1, 'index')", [CHANNEL]);
          return { job: toJob(rows[0]!), started: true };
        },
        ctx,
      ),

    async unindexed(from, afterId, limit) {
      const { rows } = await pool.query<Record<string, unknown> & { id: number }>(
        `SELECT id, ${PII_FIELDS.map((f) => `${f}_encrypted, ${column(f, from)} AS ${f}_old, ${column(f, other(from))} AS ${f}_new`).join(", ")}
           FROM users WHERE id > $1 AND (${lacking(from)}) ORDER BY id LIMIT $2`,
        [afterId, limit],
      );
      return rows.map((r) => {
        const fields: IndexedRow["fields"] = {};
        for (const f of PII_FIELDS) {
          const ciphertext = r[`${f}_encrypted`] as Buffer | null;
          const oldHash = r[`${f}_old`] as string | null;
          if (ciphertext && oldHash && r[`${f}_new`] === null) fields[f] = { ciphertext, oldHash };
        }
        return { id: r.id, fields };
      });
    },

    async countUnindexed(from, afterId) {
      const { rows } = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM users WHERE id > $1 AND (${lacking(from)})`,
        [afterId],
      );
      return BigInt(rows[0]!.n);
    },

    async countIndexed(slot, afterId) {
      const { rows } = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM users WHERE id > $1 AND (${holding(slot)})`,
        [afterId],
      );
      return BigInt(rows[0]!.n);
    },

    commitFill: (batch) =>
      withTx(pool, async (c) => {
        // The index lock before the job's row, as begin and the switch take them.
        await c.query("SELECT pg_advisory_xact_lock_shared($1)", [INDEX_LOCK]);
        const found = await job(c, "FOR UPDATE");
        if (!samePlace(found, batch.read)) return { running: false };
        const to = batch.read.toSlot;
        const from = other(to);
        // Per field, compare-and-set: a row whose old index changed (a
        // user's write, which filled both columns itself) keeps its values.
        const still = (f: PiiField) =>
          `(u.${column(f, from)} = m.${f}_old AND u.${column(f, to)} IS NULL)`;
        const sets = PII_FIELDS.map(
          (f) =>
            `${column(f, to)} = CASE WHEN ${still(f)} THEN m.${f}_new ELSE u.${column(f, to)} END`,
        );
        sets.push(`index_epoch = ${batch.read.epoch}`);
        const fills = batch.fills.filter((x) => Object.keys(x.fields).length > 0);
        let filled = 0;
        if (fills.length > 0) {
          const params: unknown[] = [fills.map((x) => x.id)];
          for (const f of PII_FIELDS) {
            params.push(
              fills.map((x) => x.fields[f]?.oldHash ?? null),
              fills.map((x) => x.fields[f]?.hash ?? null),
            );
          }
          const columns = PII_FIELDS.flatMap((f) => [`${f}_old`, `${f}_new`]);
          const unnest = params.map((_, i) => `$${i + 1}::${i === 0 ? "int[]" : "text[]"}`);
          const { rowCount } = await c
            .query(
              `UPDATE users AS u SET ${sets.join(", ")}
                 FROM unnest(${unnest.join(", ")}) AS m(id, ${columns.join(", ")})
                WHERE u.id = m.id AND (${PII_FIELDS.map(still).join(" OR ")})`,
              params,
            )
            .catch((err: { code?: string }) => {
              // Two rows whose values index alike under the new key but not
              // under the old (written outside the service): not the job's to decide.
              throw err.code === "23505" ? new IndexCollisionError() : err;
            });
          filled = rowCount ?? 0;
        }
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
        const missing = await c.query<{ n: string }>(
          `SELECT count(*) AS n FROM users WHERE ${lacking(other(read.toSlot))}`,
        );
        const n = BigInt(missing.rows[0]!.n);
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
        await appendAudit(c, audit, {
          kind: "index_key_rotated",
          actor: SYSTEM_ACTOR,
          details: {
            epoch: String(epoch),
            slot: String(read.toSlot),
            rows_indexed: rows[0]!.rows_done,
          },
        });
        await c.query("SELECT pg_notify($1, 'index')", [CHANNEL]);
        return { switched: true, missing: 0n };
      }),

    clearBatch: (read) =>
      withTx(pool, async (c) => {
        await c.query("SELECT pg_advisory_xact_lock_shared($1)", [INDEX_LOCK]);
        const found = await job(c, "FOR UPDATE");
        if (!samePlace(found, read)) return { running: false, done: false };
        const from = other(read.toSlot);
        const { rows } = await c.query<{ id: number }>(
          `WITH batch AS (
             SELECT id FROM users WHERE id > $1 AND (${holding(from)}) ORDER BY id LIMIT $2 FOR UPDATE)
           UPDATE users AS u SET ${PII_FIELDS.map((f) => `${column(f, from)} = NULL`).join(", ")},
             index_epoch = $3
             FROM batch WHERE u.id = batch.id RETURNING u.id`,
          [read.cursorId, read.batchSize, read.epoch],
        );
        if (rows.length === 0) {
          await c.query(
            `UPDATE kms_index_rotation SET phase = 'done', state = 'finished',
               finished_at = now(), updated_at = now() WHERE id = 1`,
          );
          return { running: true, done: true };
        }
        await c.query(
          "UPDATE kms_index_rotation SET cursor_id = $1, updated_at = now() WHERE id = 1",
          [Math.max(...rows.map((r) => r.id))],
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

    exclusively: (work) => exclusively(pool, JOB_LOCK, work),
    busy: () => databaseBusy(pool),
  };
}
