import { Redis } from "ioredis";
import type { LoginAttempts, LoginPolicy } from "../biz/login.js";
import type { Logger } from "../pkg/log/logger.js";

/**
 * Counters in this process: one count per instance. Bounded: past `maxKeys`
 * logins the oldest entries go first (a flood of distinct logins cannot grow
 * memory without bound).
 */
export function memoryLoginAttempts(policy: LoginPolicy, maxKeys = 100_000): LoginAttempts {
  const entries = new Map<string, { count: number; until: number }>();
  const live = (key: string) => {
    const e = entries.get(key);
    if (e && e.until <= Date.now()) entries.delete(key);
    return e && e.until > Date.now() ? e : undefined;
  };
  return {
    lockedFor: async (key) => {
      const e = live(key);
      return e && e.count >= policy.maxAttempts ? e.until - Date.now() : 0;
    },
    failed: async (key) => {
      const e = live(key) ?? { count: 0, until: Date.now() + policy.lockMs };
      e.count++;
      if (e.count >= policy.maxAttempts) e.until = Date.now() + policy.lockMs;
      entries.delete(key);
      if (entries.size >= maxKeys) entries.delete(entries.keys().next().value!);
      entries.set(key, e);
    },
    succeeded: async (key) => {
      entries.delete(key);
    },
  };
}

export interface RedisLoginAttempts extends LoginAttempts {
  /** Resolves with a note while Redis is unreachable (counting in memory). */
  health(): Promise<string | void>;
  close(): Promise<void>;
}

const PREFIX = "kbts:login-failures:";

/**
 * Counters in Redis, shared by every instance. When Redis cannot be reached
 * the service keeps answering: counts go to memory meanwhile, the log says so
 * once, and `health` reports it.
 */
export function redisLoginAttempts(
  addr: string,
  policy: LoginPolicy,
  log: Logger,
): RedisLoginAttempts {
  const [host, port] = splitAddr(addr);
  const redis = new Redis({
    host,
    port,
    lazyConnect: false,
    // Fail a command at once while disconnected rather than queue it.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 2000,
    commandTimeout: 1000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  const memory = memoryLoginAttempts(policy);
  let down = false;
  redis.on("error", () => undefined);
  redis.on("ready", () => {
    if (down) log.info({ redis: "reachable" }, "login counters back in Redis");
    down = false;
  });
  const fallback = <T>(use: () => Promise<T>, instead: () => Promise<T>) =>
    use().catch((err: unknown) => {
      if (!down) {
        down = true;
        log.warn(
          { err: { message: (err as Error).message } },
          "Redis unreachable: counting failed logins in memory",
        );
      }
      return instead();
    });
  return {
    lockedFor: (key) =>
      fallback(
        async () => {
          const [count, ttl] = await redis
            .multi()
            .get(PREFIX + key)
            .pttl(PREFIX + key)
            .exec()
            .then(results);
          return Number(count) >= policy.maxAttempts && Number(ttl) > 0 ? Number(ttl) : 0;
        },
        () => memory.lockedFor(key),
      ),
    failed: (key) =>
      fallback(
        async () => {
          const [count] = await redis
            .multi()
            .incr(PREFIX + key)
            .pexpire(PREFIX + key, policy.lockMs, "NX")
            .exec()
            .then(results);
          if (Number(count) >= policy.maxAttempts) await redis.pexpire(PREFIX + key, policy.lockMs);
        },
        () => memory.failed(key),
      ),
    succeeded: (key) =>
      fallback(
        async () => void (await redis.del(PREFIX + key)),
        () => memory.succeeded(key),
      ),
    health: async () => {
      if (redis.status !== "ready") return "Redis unreachable: counting failed logins in memory";
    },
    close: async () => {
      redis.disconnect();
    },
  };
}

function results(replies: [Error | null, unknown][] | null): unknown[] {
  if (!replies) throw new Error("transaction aborted");
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

function splitAddr(addr: string): [string, number] {
  const at = addr.lastIndexOf(":");
  return [addr.slice(0, at).replace(/^\[|\]$/g, ""), Number(addr.slice(at + 1))];
}
