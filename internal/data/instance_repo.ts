import pg from "pg";
import { abandon, connect, disconnect, isConnectionLost } from "../migrate/connect.js";
import { ensureInstancesTable, INSTANCES_TABLE } from "../migrate/instances.js";

/** What this server tells the others about itself (internal/migrate/instances.ts). */
export interface Self {
  id: string;
  host: string;
  pid: number;
  release: string;
  schemaVersion: bigint;
}

/** This server's row in public.migrate_instances. */
export interface InstanceRepo {
  /** Inserts or refreshes the row, alive for `ttlMs` more; creates the table when missing. */
  beat(): Promise<void>;
  /** Deletes the row (a graceful stop) and closes the connection. */
  forget(): Promise<void>;
}

/**
 * The row is written on a connection of its own to `url` (the direct source):
 * a saturated request pool or background jobs holding their sessions must not
 * delay a beat until this live instance looks gone. Each statement is bounded
 * by `statementTimeoutMs` on the server and, should the network stall, by the
 * same plus `connectTimeoutMs` here.
 */
export function newInstanceRepo(
  url: string,
  self: Self,
  opts: { ttlMs: number; statementTimeoutMs: number; connectTimeoutMs: number },
): InstanceRepo {
  let client: pg.Client | undefined;
  let tableChecked = false;
  const session = async (): Promise<pg.Client> => {
    client ??= await connect(url, opts.connectTimeoutMs, {
      replyTimeoutMs: opts.statementTimeoutMs + opts.connectTimeoutMs,
      applicationName: "kratos-boilerplate-ts heartbeat",
    });
    return client;
  };
  // One transaction per beat, SET LOCAL bounding each statement in it (the
  // table's creation too: it may wait for another creator's lock) and
  // leaving nothing behind on the session.
  const bounded = async (work: (c: pg.Client) => Promise<unknown>): Promise<void> => {
    const c = await session();
    try {
      await c.query(`BEGIN; SET LOCAL statement_timeout = ${Math.floor(opts.statementTimeoutMs)}`);
      await work(c);
      await c.query("COMMIT");
    } catch (err) {
      if (isConnectionLost(err)) {
        client = undefined;
        abandon(c);
      } else await c.query("ROLLBACK").catch(() => undefined);
      if ((err as { code?: string }).code === "42P01") tableChecked = false;
      throw err;
    }
  };
  const row = [
    pg.escapeLiteral(self.id),
    pg.escapeLiteral(self.host),
    String(self.pid),
    pg.escapeLiteral(self.release),
    String(self.schemaVersion),
  ].join(", ");
  return {
    async beat() {
      const ttl = `interval '${Math.ceil(opts.ttlMs)} milliseconds'`;
      await bounded(async (c) => {
        if (!tableChecked) await ensureInstancesTable(c);
        // Rows expired an hour ago go, a few at a time, by whoever writes: an
        // operator still sees an instance that died without a goodbye.
        await c.query(
          `INSERT INTO ${INSTANCES_TABLE} (id, host, pid, release, schema_version, started_at, last_seen, expires_at)
           VALUES (${row}, now(), now(), now() + ${ttl})
           ON CONFLICT (id) DO UPDATE SET last_seen = now(), expires_at = now() + ${ttl};
           DELETE FROM ${INSTANCES_TABLE} WHERE id IN (
             SELECT id FROM ${INSTANCES_TABLE} WHERE expires_at < now() - interval '1 hour'
              LIMIT 100 FOR UPDATE SKIP LOCKED)`,
        );
      });
      tableChecked = true;
    },
    async forget() {
      try {
        await bounded((c) =>
          c.query(`DELETE FROM ${INSTANCES_TABLE} WHERE id = ${pg.escapeLiteral(self.id)}`),
        );
      } finally {
        const c = client;
        client = undefined;
        if (c) await disconnect(c, opts.connectTimeoutMs);
      }
    },
  };
}
