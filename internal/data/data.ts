import { resolve } from "node:path";
import { durationMs } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import type { Data_Database } from "../conf/conf_pb.js";
import type { Logger } from "../pkg/log/logger.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../pkg/embedded_pg/embedded_pg.js";
import { describe } from "../pkg/dburl/dburl.js";

export { describe };

const CLOSE_WAIT_MS = 5000;

// Direct connections a session holds for long: one per background job at
// work (its advisory lock; job_lock.ts). The key listener and migrations
// open their own.
const DIRECT_POOL_SIZE = 2;

/** The data layer's shared resources, as Kratos' data.Data. */
export interface Data {
  /**
   * Short transactions and single statements, nothing a session keeps: it
   * may lead through a pooler in transaction mode (data.database.source).
   */
  pool: pg.Pool;
  /** Connection string in use (credentials included: never log it). */
  url: string;
  /**
   * What needs a session of its own (LISTEN, session advisory locks,
   * migrations), at data.database.direct_source; without one, `url` and
   * `pool` themselves.
   */
  direct: Direct;
  /** Which PostgreSQL is in use; logged at start. */
  kind: "embedded" | "external";
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  /** Readiness: the database answers, or every connection is busy answering. */
  ready(): Promise<void>;
  /** Closes the pool, then stops the embedded PostgreSQL if it was started. */
  close(): Promise<void>;
}

/** The database reached directly: its URL (credentials included) and a small pool. */
export interface Direct {
  url: string;
  pool: pg.Pool;
}

export interface DataOptions {
  /** Where `.data/` lives for the embedded PostgreSQL; the working directory by default. */
  workDir?: string;
}

/** The configured PostgreSQL, or the embedded one started for us when none is. */
export async function startDatabase(
  source: string,
  log: Logger,
  opts: DataOptions = {},
): Promise<{ url: string; embedded: EmbeddedPostgres | undefined }> {
  if (source) return { url: source, embedded: undefined };
  const embedded = await startEmbeddedPostgres(
    resolve(opts.workDir ?? process.cwd(), ".data"),
    log,
  );
  return { url: embedded.url, embedded };
}

export async function openData(
  conf: Data_Database,
  log: Logger,
  opts: DataOptions = {},
): Promise<Data> {
  const { url: source, embedded } = await startDatabase(conf.source, log, opts);
  const connectTimeoutMs = durationMs(conf.connectTimeout!);
  const pool = newPool(source, conf.poolSize, connectTimeoutMs, "kratos-boilerplate-ts", log);
  const direct: Direct = conf.directSource
    ? {
        url: conf.directSource,
        pool: newPool(
          conf.directSource,
          DIRECT_POOL_SIZE,
          connectTimeoutMs,
          "kratos-boilerplate-ts direct",
          log,
        ),
      }
    : { url: source, pool };
  const close = async () => {
    const pools = direct.pool === pool ? [pool] : [pool, direct.pool];
    // pool.end() waits for every checked-out client: one stuck behind a lock
    // must not hold the shutdown for ever.
    const ended = await Promise.race([
      Promise.all(pools.map((p) => p.end())).then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), CLOSE_WAIT_MS).unref()),
    ]);
    if (!ended) log.warn("database pool still busy; closing without it");
    await embedded?.stop();
  };
  const ping = async () => {
    await pool.query("SELECT 1");
  };
  // Every client busy is load, not an outage: readiness must not take each
  // instance out of service at once under a spike.
  const ready = async () => {
    if (pool.waitingCount > 0) return;
    await ping();
  };
  try {
    await ping();
  } catch (err) {
    await close().catch(() => undefined);
    throw new Error(`database ${describe(source)} unreachable: ${(err as Error).message}`);
  }
  if (direct.pool !== pool) {
    try {
      await direct.pool.query("SELECT 1");
    } catch (err) {
      await close().catch(() => undefined);
      throw new Error(
        `database ${describe(direct.url)} (data.database.direct_source) unreachable: ${(err as Error).message}`,
      );
    }
  }
  const kind = embedded ? "embedded" : "external";
  log.info(
    {
      database: describe(source),
      direct: direct.pool === pool ? undefined : describe(direct.url),
      kind,
      dataDir: embedded?.dataDir,
    },
    `using ${kind} PostgreSQL`,
  );
  return { pool, url: source, direct, kind, ping, ready, close };
}

function newPool(
  url: string,
  max: number,
  connectTimeoutMs: number,
  applicationName: string,
  log: Logger,
): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: connectTimeoutMs,
    application_name: applicationName,
  });
  // An idle client's connection error is reported here, not to a caller;
  // without a listener it would crash the process.
  pool.on("error", (err) =>
    log.warn({ err: { message: err.message } }, "idle database connection failed"),
  );
  // A checked-out client has no pool listener, and pg emits "error" on it
  // when its connection drops, even when the query in flight already got the
  // error: without a listener of its own, an outage would crash the process.
  pool.on("connect", (client) => client.on("error", () => undefined));
  return pool;
}
