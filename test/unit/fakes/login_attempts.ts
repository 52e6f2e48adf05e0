import type { LoginAttempts } from "../../../internal/biz/login.js";

/**
 * biz.LoginAttempts in memory: after `max` attempts on a key, the next is
 * refused for `lockMs` (no clock: the lock lasts until `succeeded` or `unlock`).
 */
export function fakeLoginAttempts(max: number, lockMs: number) {
  const counts = new Map<string, number>();
  const fake = {
    counts,
    async attempt(key: string) {
      const n = counts.get(key) ?? 0;
      if (n >= max) return lockMs;
      counts.set(key, n + 1);
      return 0;
    },
    async succeeded(key: string) {
      counts.delete(key);
    },
    unlock: () => counts.clear(),
  } satisfies LoginAttempts & Record<string, unknown>;
  return fake;
}
