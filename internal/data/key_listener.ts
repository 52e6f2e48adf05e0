import pg from "pg";
import type { KeyEvents } from "../biz/kms/key_events.js";
import type { Logger } from "../pkg/log/logger.js";
import { CHANNEL } from "./key_changes.js";

/** biz.KeyEvents: LISTEN on the channel every key change notifies (key_changes.ts). */
export function newKeyEvents(databaseUrl: string, log: Logger): KeyEvents {
  return { watch: (onChange) => listen(databaseUrl, onChange, log) };
}

// While the database stays down, attempts (and their warnings) space out
// rather than filling the log every second: 1 s, doubling up to 30 s.
const RETRY_MS = [1000, 2000, 4000, 8000, 16_000, 30_000];

/**
 * LISTENs on a dedicated connection and calls `onChange` per notification.
 * When the connection drops it reconnects (and calls `onChange`, as changes may
 * have been missed); the cache lifetime bounds staleness meanwhile.
 */
async function listen(
  databaseUrl: string,
  onChange: () => void,
  log: Logger,
): Promise<() => Promise<void>> {
  let stopped = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  let failures = 0;
  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: databaseUrl, application_name: "kms-listener" });
    c.on("notification", () => onChange());
    c.on("error", (err) => {
      c.end().catch(() => undefined);
      const retryInMs = schedule();
      if (retryInMs !== undefined)
        log.warn(
          { err: { message: err.message }, retryInMs },
          "kms listener lost its connection; reconnecting",
        );
    });
    await c.connect();
    await c.query(`LISTEN ${CHANNEL}`);
    client = c;
  };
  // The delay before the next attempt, or undefined when none is scheduled.
  const schedule = (): number | undefined => {
    if (stopped || retry) return undefined;
    client = undefined;
    const delay = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)]!;
    retry = setTimeout(() => {
      retry = undefined;
      connect().then(
        () => {
          if (failures > 1) log.info({ attempts: failures }, "kms listener reconnected");
          failures = 0;
          onChange();
        },
        (err: Error) => {
          const retryInMs = schedule();
          if (retryInMs !== undefined)
            log.warn(
              { err: { message: err.message }, retryInMs },
              "kms listener could not reconnect; retrying",
            );
        },
      );
    }, delay);
    failures++;
    return delay;
  };
  await connect();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    await client?.end().catch(() => undefined);
  };
}
