import { BizError } from "../../internal/biz/errors.js";
import { isDatabaseUnavailable } from "../../internal/pkg/dberr/dberr.js";
import type { Logger } from "../../internal/pkg/log/logger.js";
import type { ReadinessCheck } from "../../internal/server/http_routes.js";

// What /readyz shows of each check that fails: a short public reason, never
// an address or a driver's message; the real error goes to the log.

/** The database answers. */
export const databaseCheck = (ready: () => Promise<void>, log: Logger): ReadinessCheck =>
  publicCheck("database", ready, () => "unreachable", log);

/** The KMS can serve: the biz reason (KMS_NOT_READY, a corrupt key) is public, nothing else. */
export const kmsCheck = (ready: () => Promise<void>, log: Logger): ReadinessCheck =>
  publicCheck(
    "kms",
    ready,
    (err) =>
      isDatabaseUnavailable(err)
        ? "database unreachable"
        : err instanceof BizError
          ? err.message
          : "failed",
    log,
  );

/**
 * A readiness check that shows only `reason(err)` on /readyz and logs the
 * real error when it changes.
 */
function publicCheck(
  name: string,
  check: () => Promise<void>,
  reason: (err: unknown) => string,
  log: Logger,
): ReadinessCheck {
  let logged: string | undefined;
  return async () => {
    try {
      await check();
      logged = undefined;
    } catch (err) {
      const message = (err as Error).message;
      if (message !== logged) {
        logged = message;
        log.warn({ check: name, err: { message } }, "readiness check failed");
      }
      throw new Error(reason(err));
    }
  };
}
