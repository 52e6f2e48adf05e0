import { resolve } from "node:path";
import { durationMs } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import type { Data_Database } from "../conf/conf_pb.js";
import type { Logger } from "../pkg/log/logger.js";
import { startEmbeddedPostgres, type EmbeddedPostgres } from "../pkg/embedded_pg/embedded_pg.js";
import { describe } from "../pkg/dburl/dburl.js";

export { describe };

const CLOSE_WAIT_MS = 5000;

/** The data layer's shared resources, as Kratos' data.Data. */
export interface Data {
  pool: pg.Pool;
  /** Connection string in use (credentials included: never log it). */
  url: string;
  /** Which PostgreSQL is in use; logged at start. */
  kind: "embedded" | "external";
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  /** Readiness: the database answers, or every connection is busy answering. */
  ready(): Promise<void>;
  /** Closes the pool, then stops the embedded PostgreSQL if it was started. */
  close(): Promise<void>;
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
  const pool = new pg.Pool({
    connectionString: source,
    max: conf.poolSize,
    connectionTimeoutMillis: durationMs(conf.connectTimeout!),
    application_name: "kratos-boilerplate-ts",
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
  const close = async () => {
    // pool.end() waits for every checked-out client: one stuck behind a lock
    // must not hold the shutdown for ever.
    const ended = await Promise.race([
      pool.end().then(() => true),
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
  const kind = embedded ? "embedded" : "external";
  log.info(
    { database: describe(source), kind, dataDir: embedded?.dataDir },
    `using ${kind} PostgreSQL`,
  );
  return { pool, url: source, kind, ping, ready, close };
}
