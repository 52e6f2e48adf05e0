import { Counter, type Metric } from "prom-client";
import { ErrorReason, ErrorReasonSchema } from "../../api/user/v1/error_reason_pb.js";
import { BizError, reasonName } from "../../internal/biz/errors.js";
import type { LoginAttempts, LoginPolicy } from "../../internal/biz/login.js";
import type { UserUsecase } from "../../internal/biz/user_usecase.js";
import { memoryLoginAttempts, redisLoginAttempts } from "../../internal/data/login_attempts.js";
import type { Logger } from "../../internal/pkg/log/logger.js";
import type { ReadinessCheck } from "../../internal/server/http_routes.js";

/** How long a starting instance waits for the configured Redis before serving without it. */
const REDIS_WAIT_MS = 5000;

/**
 * Where login attempts are counted: in Redis when `redisAddr` is set, so
 * every instance sees one count (in memory meanwhile when it does not
 * answer), else in this instance's memory.
 */
export async function loginAttempts(
  redisAddr: string | undefined,
  policy: LoginPolicy,
  log: Logger,
): Promise<{
  attempts: LoginAttempts;
  /** Says whether counts are shared: not a reason to stop serving. */
  health?: ReadinessCheck;
  close(): Promise<void>;
}> {
  if (!redisAddr) return { attempts: memoryLoginAttempts(policy), close: async () => undefined };
  const shared = redisLoginAttempts(redisAddr, policy, log);
  // Not serving before Redis answers (within a bound), so no login is
  // counted in this instance alone while it connects.
  if (!(await shared.connected(REDIS_WAIT_MS))) {
    log.warn("Redis not answering at start: counting login attempts in memory until it does");
  }
  return { attempts: shared, health: shared.health, close: () => shared.close() };
}

// The refusals a login can meet, by their API reason: a wrong login or
// password, the lock after too many, password checks already at capacity.
const LOGIN_REFUSALS = [
  ErrorReason.INVALID_CREDENTIALS,
  ErrorReason.ACCOUNT_LOCKED,
  ErrorReason.RATE_LIMITED,
].map((value) => reasonName({ enum: ErrorReasonSchema, value }).reason.toLowerCase());

/**
 * Counts the logins `users` refuses, by reason, as `login_refusals_total`:
 * its verifyPassword is wrapped in place (the use case knows nothing of
 * Prometheus). Every reason starts at 0 so that a rate reads from the start.
 */
export function countLoginRefusals(users: UserUsecase): Metric {
  const refusals = new Counter({
    name: "login_refusals_total",
    help: "Logins refused, by reason: invalid_credentials, account_locked (too many failures), rate_limited (password checks at capacity).",
    labelNames: ["reason"] as const,
    registers: [],
  });
  for (const reason of LOGIN_REFUSALS) refusals.inc({ reason }, 0);
  const verify = users.verifyPassword.bind(users);
  users.verifyPassword = async (...args) => {
    try {
      return await verify(...args);
    } catch (err) {
      if (err instanceof BizError && err.reason.enum === ErrorReasonSchema) {
        const reason = reasonName(err.reason).reason.toLowerCase();
        if (LOGIN_REFUSALS.includes(reason)) refusals.inc({ reason });
      }
      throw err;
    }
  };
  return refusals;
}
