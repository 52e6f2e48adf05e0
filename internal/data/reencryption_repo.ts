import type pg from "pg";
import type {
  JobState,
  ReencryptionJob,
  ReencryptionRepo,
  RowMove,
  SealedRow,
} from "../biz/reencryption.js";
import { PII_FIELDS, RevokedKeyWriteError } from "../biz/user.js";
import { withTx } from "./tx.js";
import { actorOf, SYSTEM_ACTOR, type AuditChain } from "../biz/kms/audit_chain.js";
import { background } from "../biz/context.js";
import { appendAudit } from "./audit_repo.js";
import { keyVersionsSet } from "./user_repo.js";
import { ADVISORY_LOCKS } from "./advisory_locks.js";
import { databaseBusy, exclusively } from "./background_job.js";

const { reencryptionJob: JOB_LOCK, revocation: REVOKE_LOCK } = ADVISORY_LOCKS;

interface Row {
  state: JobState;
  generation: number;
  below_version: number | null;
  target_version: number;
  cursor_id: number;
  rows_done: string;
  rows_failed: string;
  last_error: string | null;
  batch_size: number;
  pause_ms: number;
  started_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

const toJob = (r: Row): ReencryptionJob => ({
  state: r.state,
  generation: r.generation,
  belowVersion: r.below_version ?? undefined,
  targetVersion: r.target_version,
  cursorId: r.cursor_id,
  rowsDone: BigInt(r.rows_done),
  rowsFailed: BigInt(r.rows_failed),
  lastError: r.last_error ?? undefined,
  batchSize: r.batch_size,
  pauseMs: r.pause_ms,
  startedAt: r.started_at,
  updatedAt: r.updated_at,
  finishedAt: r.finished_at ?? undefined,
});

/** Whether `found` is still the job, pass and position `read` was taken at. */
const sameRun = (found: ReencryptionJob | undefined, read: ReencryptionJob) =>
  found?.state === "running" &&
  found.generation === read.generation &&
  found.targetVersion === read.targetVersion &&
  found.cursorId === read.cursorId;

// Per field: the value read, its replacement and the replacement's version;
// NULLs where the row's field does not move.
const MOVE_COLUMNS = PII_FIELDS.flatMap((f) => [`${f}_old`, `${f}_new`, `${f}_version`]);
const MOVE_TYPES = PII_FIELDS.flatMap(() => ["bytea[]", "bytea[]", "int[]"]);

/**
 * One statement for a whole batch. Compare-and-set per field: a field a
 * user changed since it was read keeps the user's value (its comparison
 * fails, or is NULL where the field does not move), and the row's other
 * fields still move. Returns the rows changed.
 */
async function moveRows(c: pg.PoolClient, moves: RowMove[]): Promise<number> {
  // A value read before its key was revoked must stay unreadable: ordered
  // against revocations as every users write is (migration 000008), and
  // never moved from a version revoked by now.
  await c.query("SELECT pg_advisory_xact_lock_shared($1)", [REVOKE_LOCK]);
  const { rows } = await c.query<{ v: number[] | null }>(
    "SELECT array_agg(version) AS v FROM kms_data_keys WHERE status = 'revoked'",
  );
  const revoked = `$${MOVE_COLUMNS.length + 2}::int[]`;
  const still = (f: string) =>
    `(u.${f}_encrypted = m.${f}_old AND u.${f}_key_version <> ALL (${revoked}))`;
  const sets = PII_FIELDS.flatMap((f) => [
    `${f}_encrypted = CASE WHEN ${still(f)} THEN m.${f}_new ELSE u.${f}_encrypted END`,
    `${f}_key_version = CASE WHEN ${still(f)} THEN m.${f}_version ELSE u.${f}_key_version END`,
  ]);
  // In SET, columns name the row before the update: the versions gathered
  // are those the fields end with.
  sets.push(
    keyVersionsSet(
      PII_FIELDS.map(
        (f) => `CASE WHEN ${still(f)} THEN m.${f}_version ELSE u.${f}_key_version END`,
      ),
    ),
  );
  const params: unknown[] = [moves.map((m) => m.id)];
  for (const f of PII_FIELDS) {
    params.push(
      moves.map((m) => m.fields[f]?.old ?? null),
      moves.map((m) => m.fields[f]?.ciphertext ?? null),
      moves.map((m) => m.fields[f]?.keyVersion ?? null),
    );
  }
  params.push(rows[0]?.v ?? []);
  const unnest = ["int[]", ...MOVE_TYPES].map((t, i) => `$${i + 1}::${t}`).join(", ");
  const { rowCount } = await c
    .query(
      `UPDATE users AS u SET ${sets.join(", ")}
         FROM unnest(${unnest}) AS m(id, ${MOVE_COLUMNS.join(", ")})
        WHERE u.id = m.id AND (${PII_FIELDS.map(still).join(" OR ")})`,
      params,
    )
    .catch((err: { code?: string }) => {
      throw err.code === "KR001" ? new RevokedKeyWriteError() : err;
    });
  return rowCount ?? 0;
}

/**
 * biz.ReencryptionRepo on kms_reencryption, moving values of the users table;
 * starts, stops and the end of a job are audited in their transactions.
 */
export function newReencryptionRepo(pool: pg.Pool, audit: AuditChain): ReencryptionRepo {
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
          await appendAudit(c, audit, {
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
            await appendAudit(c, audit, {
              kind: "reencryption_stopped",
              actor: actorOf(ctx),
              details: { rows_done: rows[0].rows_done, rows_failed: rows[0].rows_failed },
            });
          }
          return rows[0] ? toJob(rows[0]) : job(c);
        },
        ctx,
      ),

    async rowsUnder(versions, afterId, limit) {
      const { rows } = await pool.query<Record<string, unknown> & { id: number }>(
        `SELECT id, email_encrypted, email_key_version, phone_encrypted, phone_key_version,
                name_encrypted, name_key_version
           FROM users WHERE id > $1 AND key_versions && $2::int[] ORDER BY id LIMIT $3`,
        [afterId, versions, limit],
      );
      return rows.map((r) => {
        const fields: SealedRow["fields"] = {};
        for (const f of PII_FIELDS) {
          const ciphertext = r[`${f}_encrypted`] as Buffer | null;
          if (ciphertext) fields[f] = { ciphertext, keyVersion: r[`${f}_key_version`] as number };
        }
        return { id: r.id, fields };
      });
    },

    async countUnder(versions, afterId) {
      const { rows } = await pool.query<{ n: string }>(
        "SELECT count(*) AS n FROM users WHERE id > $1 AND key_versions && $2::int[]",
        [afterId, versions],
      );
      return BigInt(rows[0]!.n);
    },

    commitBatch: (batch) =>
      withTx(pool, async (c) => {
        // Only into the job and the pass it was read for, from where it was read.
        const found = await job(c, "FOR UPDATE");
        if (!sameRun(found, batch.read)) return { running: false, moved: 0 };
        const moves = batch.moves.filter((m) => PII_FIELDS.some((f) => m.fields[f]));
        const moved = moves.length === 0 ? 0 : await moveRows(c, moves);
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
        await appendAudit(c, audit, {
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

    exclusively: (work) => exclusively(pool, JOB_LOCK, work),
    busy: () => databaseBusy(pool),
  };
}
