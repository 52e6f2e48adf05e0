import type pg from "pg";
import {
  GENESIS,
  type AuditChain,
  type AuditEntry,
  type AuditEvent,
  type AuditKind,
} from "../biz/kms/audit_chain.js";
import type { AuditRepo } from "../biz/kms/audit_trail.js";
import { ADVISORY_LOCKS } from "./advisory_locks.js";

interface Row {
  seq: string;
  at: Date;
  kind: AuditKind;
  actor: string;
  details: Record<string, string>;
  prev_hash: Buffer;
  hash: Buffer;
}

const toEvent = (r: Row): AuditEvent => ({
  seq: Number(r.seq),
  at: r.at,
  kind: r.kind,
  actor: r.actor,
  details: r.details,
  prevHash: r.prev_hash,
  hash: r.hash,
});

/**
 * Appends an event to the trail inside the caller's transaction, so it is
 * recorded exactly when the change it describes commits. Takes the trail's
 * lock last of all locks a key change takes (no lock order can cycle).
 */
export async function appendAudit(
  client: pg.PoolClient,
  chain: AuditChain,
  entry: AuditEntry,
): Promise<void> {
  await client.query("SELECT pg_advisory_xact_lock($1)", [ADVISORY_LOCKS.auditTrail]);
  const { rows } = await client.query<{ seq: string; hash: Buffer }>(
    "SELECT seq, hash FROM kms_audit_events ORDER BY seq DESC LIMIT 1",
  );
  const event = {
    ...entry,
    seq: rows[0] ? Number(rows[0].seq) + 1 : 1,
    // Milliseconds, as the hash sees them (timestamptz keeps them exactly).
    at: new Date(),
    prevHash: rows[0]?.hash ?? GENESIS,
  };
  const hash = chain.seal(event);
  await client.query(
    `INSERT INTO kms_audit_events (seq, at, kind, actor, details, prev_hash, hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [event.seq, event.at, event.kind, event.actor, event.details, event.prevHash, hash],
  );
}

/** biz.AuditRepo on kms_audit_events. */
export function newAuditRepo(pool: pg.Pool): AuditRepo {
  return {
    async newestFirst({ limit, beforeSeq }) {
      const { rows } = await pool.query<Row>(
        `SELECT * FROM kms_audit_events WHERE ($1::bigint IS NULL OR seq < $1)
          ORDER BY seq DESC LIMIT $2`,
        [beforeSeq ?? null, limit],
      );
      return rows.map(toEvent);
    },
    async oldestFirst({ limit, afterSeq }) {
      const { rows } = await pool.query<Row>(
        "SELECT * FROM kms_audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        [afterSeq, limit],
      );
      return rows.map(toEvent);
    },
  };
}
