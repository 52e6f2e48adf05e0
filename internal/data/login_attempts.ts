import { Redis } from "ioredis";
import type { LoginAttempts, LoginPolicy } from "../biz/login.js";
import type { Logger } from "../pkg/log/logger.js";

/**
 * Counters in this process: one count per instance. The window opens at the
 * first attempt; the last allowed attempt starts the lock. Bounded: past
 * `maxKeys` keys the oldest that is not locked goes first.
 */
export function memoryLoginAttempts(policy: LoginPolicy, maxKeys = 100_000): LoginAttempts {
  const entries = new Map<string, { count: number; until: number }>();
  // Full: drop the oldest entry that is not a lock in force (a flood of
  // fresh logins must not lift a lock). A scan, but only when full, and each
  // attempt already costs an scrypt.
  const evict = (now: number) => {
    for (const [key, e] of entries) {
      if (e.count < policy.maxAttempts || e.until <= now) {
        entries.delete(key);
        return;
      }
    }
    // Every one is a lock: the bound still holds.
    entries.delete(entries.keys().next().value!);
  };
  return {
    attempt: async (key) => {
      const now = Date.now();
      let e = entries.get(key);
      if (!e || e.until <= now) e = { count: 0, until: now + policy.lockMs };
      if (e.count >= policy.maxAttempts) return e.until - now;
      e.count++;
      if (e.count === policy.maxAttempts) e.until = now + policy.lockMs;
      entries.delete(key);
      if (entries.size >= maxKeys) evict(now);
      entries.set(key, e);
      return 0;
    },
    succeeded: async (key) => {
      entries.delete(key);
    },
  };
}

export interface RedisLoginAttempts extends LoginAttempts {
  /**
   * Resolves true once Redis answers, or false after `waitMs` (counts then go
   * to memory until it does): awaited before serving, so that the first
   * login is counted where every instance sees it.
   */
  connected(waitMs: number): Promise<boolean>;
  /** Resolves with a note while Redis is not answering (counting in memory). */
  health(): Promise<string | void>;
  close(): Promise<void>;
}

const PREFIX = "kbts:login-attempts:";

// One round trip, atomic: refuse while locked, else count; the window opens
// at the first attempt and the last allowed one starts the lock. (Lua rather
// than PEXPIRE … NX, which Redis 6 lacks.)
const ATTEMPT = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local max = tonumber(ARGV[1])
if n >= max then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
  return ttl
end
n = redis.call('INCR', KEYS[1])
if n == 1 or n == max then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/**
 * Counters in Redis, shared by every instance. While Redis does not answer
 * the service keeps answering: counts go to memory meanwhile, the log says
 * so, and `health` reports it until a command succeeds again.
 */
export function redisLoginAttempts(
  addr: string,
  policy: LoginPolicy,
  log: Logger,
): RedisLoginAttempts {
  const at = addr.lastIndexOf(":");
  const redis = new Redis({
    host: addr.slice(0, at).replace(/^\[|\]$/g, ""),
    port: Number(addr.slice(at + 1)),
    // Fail a command at once while disconnected rather than queue it.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    commandTimeout: 1000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  redis.on("error", () => undefined);
  const memory = memoryLoginAttempts(policy);
  let down = false;
  const fallback = async <T>(use: () => Promise<T>, instead: () => Promise<T>) => {
    try {
      const result = await use();
      if (down) log.info("Redis answers again: login attempts counted there");
      down = false;
      return result;
    } catch (err) {
      if (!down) {
        log.warn(
          { err: { message: (err as Error).message } },
          "Redis not answering: counting login attempts in memory",
        );
      }
      down = true;
      return instead();
    }
  };
  return {
    attempt: (key) =>
      fallback(
        async () =>
          Number(await redis.eval(ATTEMPT, 1, PREFIX + key, policy.maxAttempts, policy.lockMs)),
        () => memory.attempt(key),
      ),
    succeeded: (key) =>
      fallback(
        async () => void (await redis.del(PREFIX + key)),
        () => memory.succeeded(key),
      ),
    connected: (waitMs) => {
      if (redis.status === "ready") return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const done = (ok: boolean) => {
          clearTimeout(timer);
          redis.off("ready", onReady);
          resolve(ok);
        };
        const onReady = () => done(true);
        const timer = setTimeout(() => done(false), waitMs);
        redis.on("ready", onReady);
      });
    },
    health: async () => {
      if (down || redis.status !== "ready")
        return "Redis unreachable: counting login attempts in memory";
    },
    close: async () => {
      redis.disconnect();
    },
  };
}
