import { createHash } from "node:crypto";
import pg from "pg";
import type { Step } from "../plan.js";

// Where a batched backfill stands, one row per migration in flight: written
// in the transaction of the schema changes before it (so "begun" and "those
// changes committed" are one fact), then with each batch (so the cursor is
// never ahead of or behind the rows filled), deleted with the migration's
// record. A run that is killed resumes from it.

export const BACKFILLS_TABLE = "public.migrate_backfills";

/** A migration whose backfill has begun and not finished. */
export interface BackfillProgress {
  migration: string;
  direction: "up" | "down";
  /** SHA-256 of the file that began it: another text may not resume it. */
  hash: string;
  /** Which backfill of the file (0-based) is running. */
  stage: number;
  /** The last key filled through, as text; null before the stage's first batch. */
  cursor: string | null;
  rows: bigint;
  batches: bigint;
  startedAt: Date;
  updatedAt: Date;
}

export const stepHash = (s: Step): string => createHash("sha256").update(s.sql).digest("hex");

export async function ensureBackfillTable(client: pg.ClientBase): Promise<void> {
  await client.query(`CREATE TABLE IF NOT EXISTS ${BACKFILLS_TABLE} (
    migration varchar(255) PRIMARY KEY,
    direction text NOT NULL,
    hash varchar(64) NOT NULL,
    stage integer NOT NULL DEFAULT 0,
    cursor text,
    rows bigint NOT NULL DEFAULT 0,
    batches bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now())`);
}

/**
 * Backfills begun and not finished (all, or `migration`'s); [] without the
 * table or, for a role that may not read it (`status` by a read-only role),
 * without the privilege: the migrator, which wrote it, always can.
 */
export async function readBackfills(
  client: pg.ClientBase,
  migration?: string,
): Promise<BackfillProgress[]> {
  const readable = await client.query<{ ok: boolean }>(
    "SELECT to_regclass($1) IS NOT NULL AND has_table_privilege(to_regclass($1), 'SELECT') AS ok",
    [BACKFILLS_TABLE],
  );
  if (!readable.rows[0]?.ok) return [];
  const { rows } = await client.query(
    `SELECT migration, direction, hash, stage, cursor, rows::text AS rows, batches::text AS batches,
            started_at, updated_at
       FROM ${BACKFILLS_TABLE} ${migration === undefined ? "" : "WHERE migration = $1"} ORDER BY migration`,
    migration === undefined ? [] : [migration],
  );
  return rows.map((r: Record<string, unknown>) => ({
    migration: r.migration as string,
    direction: r.direction as "up" | "down",
    hash: r.hash as string,
    stage: r.stage as number,
    cursor: r.cursor as string | null,
    rows: BigInt(r.rows as string),
    batches: BigInt(r.batches as string),
    startedAt: r.started_at as Date,
    updatedAt: r.updated_at as Date,
  }));
}

/** The statement that says the schema changes before the backfills committed (sent in their transaction). */
export function beginStatement(s: Step): string {
  return `INSERT INTO ${BACKFILLS_TABLE} (migration, direction, hash) VALUES (${pg.escapeLiteral(s.name)}, ${pg.escapeLiteral(s.direction)}, ${pg.escapeLiteral(stepHash(s))})`;
}

/** A batch filled through `cursor` (sent in the batch's transaction). */
export function advanceStatement(s: Step, stage: number, cursor: string, rows: number): string {
  return `UPDATE ${BACKFILLS_TABLE} SET stage = ${stage}, cursor = ${pg.escapeLiteral(cursor)},
    rows = rows + ${rows}, batches = batches + 1, updated_at = now() WHERE migration = ${pg.escapeLiteral(s.name)}`;
}

/** A stage finished: the next begins at the table's first key. */
export function nextStageStatement(s: Step, stage: number): string {
  return `UPDATE ${BACKFILLS_TABLE} SET stage = ${stage}, cursor = NULL, updated_at = now() WHERE migration = ${pg.escapeLiteral(s.name)}`;
}

/** Sent with the migration's record: its backfill is over. */
export function finishStatement(s: Step): string {
  return `DELETE FROM ${BACKFILLS_TABLE} WHERE migration = ${pg.escapeLiteral(s.name)}`;
}
