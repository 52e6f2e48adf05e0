// PLACEHOLDER until helper-beat lands (its version replaces this file).
import type pg from "pg";

export const INSTANCES_TABLE = "public.migrate_instances";

export interface Instance {
  id: string;
  host: string;
  pid: number;
  release: string;
  schemaVersion: bigint;
  startedAt: Date;
  lastSeen: Date;
  expiresAt: Date;
}

export async function ensureInstancesTable(client: pg.ClientBase): Promise<void> {
  await client.query(`CREATE TABLE IF NOT EXISTS public.migrate_instances (
    id text PRIMARY KEY, host text NOT NULL, pid integer NOT NULL, release text NOT NULL,
    schema_version bigint NOT NULL, started_at timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(), expires_at timestamptz NOT NULL)`);
}

export async function readLiveInstances(client: pg.ClientBase): Promise<Instance[] | undefined> {
  const exists = await client.query(
    "SELECT to_regclass('public.migrate_instances') IS NOT NULL AS ok",
  );
  if (!exists.rows[0].ok) return undefined;
  const { rows } = await client.query(
    `SELECT id, host, pid, release, schema_version::text AS v, started_at, last_seen, expires_at
       FROM public.migrate_instances WHERE expires_at > now() ORDER BY schema_version, started_at`,
  );
  return rows.map((r) => ({
    id: r.id,
    host: r.host,
    pid: r.pid,
    release: r.release,
    schemaVersion: BigInt(r.v),
    startedAt: r.started_at,
    lastSeen: r.last_seen,
    expiresAt: r.expires_at,
  }));
}

export function describeInstance(i: Instance): string {
  return `${i.host} pid ${i.pid} (release ${i.release}, schema ${i.schemaVersion}, last seen ${i.lastSeen.toISOString()})`;
}
