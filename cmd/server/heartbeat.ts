import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { InstanceRepo, Self } from "../../internal/data/instance_repo.js";
import { readMigrations } from "../../internal/migrate/source.js";
import type { Logger } from "../../internal/pkg/log/logger.js";

/**
 * Who this server is for public.migrate_instances: the schema it needs is
 * the newest version in its migrations folder (0 when empty). A folder that
 * cannot be read counts as 0 too, the oldest: a contract then waits for
 * this instance rather than guess that it may go ahead.
 */
export function self(dir: string, release: string, log: Logger): Self {
  let schemaVersion = 0n;
  try {
    schemaVersion = readMigrations(dir).migrations.at(-1)?.version ?? 0n;
  } catch (err) {
    log.warn(
      { err: { message: (err as Error).message } },
      "heartbeat: migrations folder unreadable; this instance records schema 0",
    );
  }
  return { id: randomUUID(), host: hostname(), pid: process.pid, release, schemaVersion };
}

/**
 * Beats now (awaited: the row is there before the service listens), then
 * `intervalMs` after each beat ends, so one at most is in flight. A beat
 * that fails never stops the service: the first failure of a run is logged
 * (a role that may not write the table, the database down), then the next
 * success. stop() waits for the beat under way, then deletes the row.
 */
export async function startHeartbeat(
  repo: InstanceRepo,
  intervalMs: number,
  log: Logger,
): Promise<{ stop(): Promise<void> }> {
  let failing = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  const beat = async () => {
    try {
      await repo.beat();
      if (failing) log.info("heartbeat: recorded in migrate_instances again");
      failing = false;
    } catch (err) {
      if (!failing)
        log.warn(
          { err: { message: (err as Error).message } },
          "heartbeat: could not record this instance in migrate_instances; retrying each interval (a contract migration cannot see it meanwhile)",
        );
      failing = true;
    }
  };
  const next = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      inFlight = beat().then(next);
    }, intervalMs).unref();
  };
  inFlight = beat();
  await inFlight;
  next();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
      await repo.forget();
    },
  };
}
