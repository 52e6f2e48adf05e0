import pg from "pg";
import { parse } from "pg-connection-string";
import { describe } from "../url.js";

/** A connection string that does not name a database explicitly. */
export class DatabaseUrlError extends Error {
  override name = "DatabaseUrlError";
}

/** The database is unreachable or did not answer in time. */
export class DatabaseUnavailableError extends Error {
  override name = "DatabaseUnavailableError";
}

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
 * a message that names the database without credentials.
 */
export async function connect(url: string, timeoutMs: number): Promise<pg.Client> {
  const { connectTimeoutMs = timeoutMs } = checkDatabaseUrl(url);
  const client = new pg.Client({
    connectionString: url,
    application_name: "migrate",
    connectionTimeoutMillis: connectTimeoutMs,
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
  return client;
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}
