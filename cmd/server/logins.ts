import type { LoginAttempts, LoginPolicy } from "../../internal/biz/login.js";
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
