import pg from "pg";
import { sqlstateOf } from "../pkg/dberr/dberr.js";
import { parse } from "pg-connection-string";
import { describe } from "../pkg/dburl/dburl.js";

/** A connection string that does not name a database explicitly. */
export class DatabaseUrlError extends Error {
  override name = "DatabaseUrlError";
}

/** The database is unreachable or did not answer in time. */
export class DatabaseUnavailableError extends Error {
  override name = "DatabaseUnavailableError";
}

/** The database (or something between) stopped answering a query it had been sent. */
export class DatabaseStalledError extends Error {
  override name = "DatabaseStalledError";
}

/** How long to wait for a reply when none is named per query; undefined waits as long as the server works. */
export interface ReplyBound {
  replyTimeoutMs?: number;
  /** What pg_stat_activity shows; "migrate" by default. */
  applicationName?: string;
}

/** pg's own words when a query_timeout expires. */
const READ_TIMEOUT = "Query read timeout";

/**
 * Checks that a URL names its host and database itself: pg would otherwise
 * fill the gaps from PGHOST, PGDATABASE… and migrate whatever those name.
 * Returns the URL's own connect_timeout in milliseconds, if it sets one.
 */
export function checkDatabaseUrl(url: string): { connectTimeoutMs?: number } {
  if (!/^postgres(ql)?:\/\//i.test(url)) {
    throw new DatabaseUrlError("database URL: expected postgres://user@host:port/database");
  }
  let parsed: ReturnType<typeof parse> & { connect_timeout?: string };
  try {
    parsed = parse(url);
    new URL(url);
  } catch {
    // Not echoed: it may hold a password.
    throw new DatabaseUrlError("database URL: not a valid postgres:// URL");
  }
  const missing = [!parsed.host && "host", !parsed.database && "database"].filter(Boolean);
  if (missing.length > 0) {
    throw new DatabaseUrlError(
      `database URL names no ${missing.join(" and no ")}; write them out (postgres://user@host:port/database): PG* environment variables are not consulted`,
    );
  }
  if (parsed.connect_timeout === undefined) return {};
  const seconds = Number(parsed.connect_timeout);
  if (!Number.isInteger(seconds) || seconds < 0) {
    throw new DatabaseUrlError(
      `database URL: connect_timeout=${parsed.connect_timeout} is not a whole number of seconds`,
    );
  }
  // libpq: 0 means wait forever; a migrator never should, so 0 keeps our default.
  return seconds > 0 ? { connectTimeoutMs: seconds * 1000 } : {};
}

/**
 * Connects within `timeoutMs` (the URL's connect_timeout wins), failing with
 * a message that names the database without credentials. Every query then
 * waits at most `replyTimeoutMs` for its reply (or its own query_timeout),
 * after which the connection is dropped and DatabaseStalledError names the
 * stall: pg leaves a timed-out query on the wire, so the connection would
 * never serve another query nor close. TCP keepalive notices a peer host that
 * vanished.
 */
export async function connect(
  url: string,
  timeoutMs: number,
  { replyTimeoutMs, applicationName = "migrate" }: ReplyBound = {},
): Promise<pg.Client> {
  const { connectTimeoutMs = timeoutMs } = checkDatabaseUrl(url);
  const client = new pg.Client({
    connectionString: url,
    application_name: applicationName,
    connectionTimeoutMillis: connectTimeoutMs,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // A connection lost later is reported by the query that notices it; without
  // a listener it would crash the process.
  client.on("error", () => undefined);
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    const message = (err as Error).message;
    throw new DatabaseUnavailableError(
      /timeout/i.test(message)
        ? `database ${describe(url)} did not answer within ${formatSeconds(connectTimeoutMs)}`
        : `database ${describe(url)} unreachable: ${message}`,
    );
  }
  if (replyTimeoutMs) boundReplies(client, url, replyTimeoutMs);
  return client;
}

// Every query of this client gets a query_timeout; one that expires drops
// the connection.
function boundReplies(client: pg.Client, url: string, replyTimeoutMs: number): void {
  const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
  client.query = ((config: string | pg.QueryConfig, ...rest: unknown[]) => {
    const bounded =
      typeof config === "string"
        ? { text: config, query_timeout: replyTimeoutMs }
        : { query_timeout: replyTimeoutMs, ...config };
    return query(bounded, ...rest).catch((err: unknown) => {
      if ((err as Error).message !== READ_TIMEOUT) throw err;
      abandon(client);
      throw new DatabaseStalledError(
        `database ${describe(url)} stopped answering: no reply within ${formatSeconds(bounded.query_timeout)} ` +
          "(the statement bound plus the connect timeout)",
      );
    });
  }) as typeof client.query;
}

/** Drops the connection at once, whatever it is waiting for. */
export function abandon(client: pg.Client): void {
  (
    client as unknown as { connection: { stream: { destroy(): void } } }
  ).connection.stream.destroy();
}

/** Closes politely, or drops the connection if the peer does not see it off within `ms`. */
export async function disconnect(client: pg.Client, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.end().catch(() => undefined),
    new Promise<void>((r) => {
      timer = setTimeout(() => {
        abandon(client);
        r();
      }, ms);
    }),
  ]);
  clearTimeout(timer);
}

// What node-postgres and the socket say when the connection, not the
// statement, failed.
const LOST_MESSAGES =
  /^(Connection terminated|Client has encountered a connection error|Client was closed)/;
const SOCKET_CODES = new Set(["ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNREFUSED", "EHOSTUNREACH"]);

/** The server process behind `client` (pg keeps it from the start-up reply but does not type it). */
export function backendPid(client: pg.Client): number {
  return (client as unknown as { processID: number }).processID;
}

/**
 * The connection failed rather than the statement: it stalled, the socket
 * broke or closed, or the server ended the session (class 08, 57P0x).
 * Whether the statement in flight took effect is then unknown. Any other
 * error (a statement's SQLSTATE, a bug of ours) is not a lost connection.
 */
export function isConnectionLost(err: unknown): boolean {
  if (err instanceof DatabaseStalledError) return true;
  const { code, message } = err as { code?: unknown; message?: unknown };
  const state = sqlstateOf(err);
  if (state) return state.startsWith("08") || /^57P0[1-3]$/.test(state);
  if (typeof code === "string" && SOCKET_CODES.has(code)) return true;
  return typeof message === "string" && LOST_MESSAGES.test(message);
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}
