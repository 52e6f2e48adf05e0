import { Gauge, type Metric } from "prom-client";
import type pg from "pg";
import { readAtScrape, scrapedGauge } from "../../internal/server/metrics.js";

// pg_database_size walks the database's files: read at most every half
// minute, bounded by the server and by the scrape.
const SIZE_TTL_MS = 30_000;
const SIZE_STATEMENT_TIMEOUT_MS = 1000;
const SIZE_SCRAPE_TIMEOUT_MS = 2000;

/**
 * The database as Prometheus series: the pool `name` of this process
 * (connections in use, idle, callers waiting for one, the most it opens)
 * read from the pool itself, and the database's size, read at scrape.
 */
export function dataMetrics(pool: pg.Pool, name = "main"): Metric[] {
  const labels = { pool: name };
  const size = readAtScrape(() => databaseSize(pool), {
    ttlMs: SIZE_TTL_MS,
    timeoutMs: SIZE_SCRAPE_TIMEOUT_MS,
  });
  return [
    new Gauge({
      name: "db_pool_connections",
      help: "Connections the pool holds, by state: in_use (lent to a query or transaction) or idle.",
      labelNames: ["pool", "state"] as const,
      registers: [],
      collect() {
        this.set({ ...labels, state: "in_use" }, pool.totalCount - pool.idleCount);
        this.set({ ...labels, state: "idle" }, pool.idleCount);
      },
    }),
    new Gauge({
      name: "db_pool_max_connections",
      help: "The most connections the pool opens (data.database.pool_size).",
      labelNames: ["pool"] as const,
      registers: [],
      collect() {
        this.set(labels, pool.options.max);
      },
    }),
    new Gauge({
      name: "db_pool_waiting_clients",
      help: "Callers waiting for a connection because every one the pool may open is in use.",
      labelNames: ["pool"] as const,
      registers: [],
      collect() {
        this.set(labels, pool.waitingCount);
      },
    }),
    scrapedGauge(
      "db_size_bytes",
      "The database's size on disk (pg_database_size), read at most every 30 s; absent while it cannot be read.",
      size,
    ),
  ];
}

/** pg_database_size of the current database, bounded by a statement timeout of its own. */
async function databaseSize(pool: pg.Pool): Promise<number> {
  const client = await pool.connect();
  try {
    // One round trip; SET LOCAL ends with the transaction, so the pooled
    // connection keeps its own timeout.
    const results = (await client.query(
      `BEGIN; SET LOCAL statement_timeout = ${SIZE_STATEMENT_TIMEOUT_MS}; SELECT pg_database_size(current_database())::text AS bytes; COMMIT`,
    )) as unknown as pg.QueryResult<{ bytes: string }>[];
    return Number(results[2]!.rows[0]!.bytes);
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
