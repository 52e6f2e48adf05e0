import type pg from "pg";
import { sqlstateOf } from "../pkg/dberr/dberr.js";
import { backendPid, connect, disconnect, isConnectionLost } from "./connect.js";
import type { MigratorOptions } from "./options.js";

// Our cancel of the statement in flight on a signal, and how to tell it
// from statement_timeout's, which ends a statement with the same SQLSTATE.

/** A statement cancelled: by our cancel request, or by statement_timeout. */
export const QUERY_CANCELED = "57014";

// Clients whose cancel did not reach the server (it could not connect, or
// the backend was gone): their statement runs on, to its end or its timeout.
const missed = new WeakSet<pg.Client>();

/**
 * Cancels the statement `busy` runs, over a second connection as the
 * protocol's cancel request would: the first one is busy.
 */
export async function cancelBackend(opts: MigratorOptions, busy: pg.Client): Promise<void> {
  const pid = backendPid(busy);
  // The statement then runs to its own end (statement_timeout bounds it);
  // nothing starts after it (the run checks the signal between statements).
  const missing = (why: string) => {
    missed.add(busy);
    opts.log.warn(
      { err: why },
      "could not cancel the statement in flight: it runs to its end, and nothing starts after it",
    );
  };
  let client: pg.Client;
  try {
    client = await connect(opts.databaseUrl, opts.connectTimeoutMs, {
      replyTimeoutMs: opts.connectTimeoutMs,
    });
  } catch (err) {
    return missing((err as Error).message);
  }
  try {
    const { rows } = await client.query<{ sent: boolean }>("SELECT pg_cancel_backend($1) AS sent", [
      pid,
    ]);
    if (rows[0]?.sent === false) missing(`the server did not signal backend ${pid}`);
  } catch (err) {
    // The server's refusal (no privilege, say) is a miss; no reply, or the
    // session ended, is not known to be one: a 57014 then is taken as ours.
    if (sqlstateOf(err) && !isConnectionLost(err)) missing((err as Error).message);
  } finally {
    await disconnect(client, opts.connectTimeoutMs);
  }
}

/**
 * Our cancel on the signal ended `client`'s statement: 57014 after the
 * signal fired, our cancel having reached the server. Not statement_timeout
 * after a cancel that missed, a lost connection (whose COMMIT's outcome is
 * read back) nor an error of the statement's own.
 */
export function cancelledBy(
  err: unknown,
  signal: AbortSignal | undefined,
  client: pg.Client,
): boolean {
  return signal?.aborted === true && sqlstateOf(err) === QUERY_CANCELED && !missed.has(client);
}
