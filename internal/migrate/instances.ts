import type pg from "pg";
import { ADVISORY_LOCKS } from "../data/advisory_locks.js";

// Every running server's row: who it is, the schema it needs, and until when
// it counts as alive (refreshed each heartbeat_interval by
// internal/data/instance_repo.ts). The contract phase reads it so as not to
// drop what an instance of the previous release still uses. Times are the
// database's (now()): the instances' clocks may disagree, its clock is one.

export const INSTANCES_TABLE = "public.migrate_instances";

export interface Instance {
  id: string;
  host: string;
  pid: number;
  release: string;
  /** The newest migration version in this instance's migrations folder: the schema it needs. */
  schemaVersion: bigint;
  startedAt: Date;
  lastSeen: Date;
  expiresAt: Date;
}

/** Creates public.migrate_instances if missing (idempotent, safe under concurrency). */
export async function ensureInstancesTable(client: pg.ClientBase): Promise<void> {
  // Checked first: a role without CREATE on the schema may still write an
  // existing table, and IF NOT EXISTS checks that privilege before existence.
  if (await exists(client)) return;
  // One query, one (implicit or the caller's) transaction: the lock is held
  // until the table is committed, so a second creator then finds it.
  await client.query(
    `SELECT pg_advisory_xact_lock(${ADVISORY_LOCKS.instancesTable});
     CREATE TABLE IF NOT EXISTS ${INSTANCES_TABLE} (
       id text PRIMARY KEY,
       host text NOT NULL,
       pid integer NOT NULL,
       release text NOT NULL,
       schema_version bigint NOT NULL,
       started_at timestamptz NOT NULL,
       last_seen timestamptz NOT NULL,
       expires_at timestamptz NOT NULL
     )`,
  );
}

/**
 * Instances whose heartbeat has not expired (by the database's clock), oldest
 * schema first; undefined when the table is missing or this role may not read it.
 */
export async function readLiveInstances(client: pg.ClientBase): Promise<Instance[] | undefined> {
  const { rows: state } = await client.query<{ state: "absent" | "ok" | "denied" }>(
    `SELECT CASE WHEN to_regclass($1) IS NULL THEN 'absent'
                 WHEN has_table_privilege(to_regclass($1), 'SELECT') THEN 'ok'
                 ELSE 'denied' END AS state`,
    [INSTANCES_TABLE],
  );
  if (state[0]!.state !== "ok") return undefined;
  const { rows } = await client.query<{
    id: string;
    host: string;
    pid: number;
    release: string;
    schema_version: string;
    started_at: Date;
    last_seen: Date;
    expires_at: Date;
  }>(
    `SELECT id, host, pid, release, schema_version::text, started_at, last_seen, expires_at
       FROM ${INSTANCES_TABLE} WHERE expires_at > now()
      ORDER BY schema_version, started_at, id`,
  );
  return rows.map((r) => ({
    id: r.id,
    host: r.host,
    pid: r.pid,
    release: r.release,
    schemaVersion: BigInt(r.schema_version),
    startedAt: r.started_at,
    lastSeen: r.last_seen,
    expiresAt: r.expires_at,
  }));
}

/** "host pid 1234 (release 1.2.0, schema 000018, last seen 2026-…Z)" for messages. */
export function describeInstance(i: Instance): string {
  const schema = String(i.schemaVersion).padStart(6, "0");
  return `${printable(i.host)} pid ${i.pid} (release ${printable(i.release)}, schema ${schema}, last seen ${i.lastSeen.toISOString()})`;
}

async function exists(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [
    INSTANCES_TABLE,
  ]);
  return rows[0]?.ok === true;
}

// Anyone who may write the table writes these: a message must not carry
// their control or format characters (a bidi override) to a terminal, nor
// grow without end.
function printable(text: string): string {
  const shown = text.replace(/[\p{Cc}\p{Cf}]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
  return shown.length > 100 ? `${shown.slice(0, 100)}…` : shown;
}
