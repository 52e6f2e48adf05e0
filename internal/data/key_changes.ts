import type pg from "pg";
import type { Context } from "../biz/context.js";
import { actorOf, type AuditChain, type AuditEntry } from "../biz/kms/audit_chain.js";
import { announcement } from "../biz/kms/key_events.js";
import { ADVISORY_LOCKS, type AdvisoryLock } from "./advisory_locks.js";
import { appendAudit } from "./audit_repo.js";
import { withTx } from "./tx.js";

// The side effects of a change of keys, carried out here for every kind:
// the lock it takes first (advisory_locks.ts), then its audit event and the
// news biz says the other instances must hear (biz/kms/key_events.ts),
// committed with the change or not at all.

/** The channel every instance LISTENs on for key changes (key_listener.ts). */
export const CHANNEL = "kms_keys";

/**
 * Records `entry` in the audit trail inside the caller's transaction and,
 * when its kind changes keys, announces it to every instance on commit.
 */
export async function recordKeyChange(
  client: pg.PoolClient,
  chain: AuditChain,
  entry: AuditEntry,
): Promise<void> {
  await appendAudit(client, chain, entry);
  const news = announcement(entry);
  if (news !== undefined) await client.query("SELECT pg_notify($1, $2)", [CHANNEL, news]);
}

/** What a change did: its answer, and the event to record (none: nothing changed). */
export interface Changed<T> {
  result: T;
  event?: Omit<AuditEntry, "actor">;
}

/**
 * `change` in one transaction after the exclusive advisory lock `lock`;
 * its event (by the caller in `ctx`, else the service itself) recorded and
 * announced as recordKeyChange does.
 */
export function changeKeys<T>(
  pool: pg.Pool,
  chain: AuditChain,
  lock: AdvisoryLock,
  change: (c: pg.PoolClient) => Promise<Changed<T>>,
  ctx?: Context,
): Promise<T> {
  return withTx(
    pool,
    async (c) => {
      await c.query("SELECT pg_advisory_xact_lock($1)", [ADVISORY_LOCKS[lock]]);
      const { result, event } = await change(c);
      if (event) await recordKeyChange(c, chain, { ...event, actor: actorOf(ctx) });
      return result;
    },
    ctx,
  );
}
