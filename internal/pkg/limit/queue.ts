/** A token bucket per key: `rate` per second, up to `burst` at once. */
export function tokenBuckets(rate: number, burst: number, maxKeys = 100_000) {
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    /** 0 when `key` may go now (and spends a token), else ms until it may. */
    take(key: string, now = performance.now()): number {
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value!);
        b = { tokens: burst, at: now };
        buckets.set(key, b);
      }
      b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
      b.at = now;
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return 0;
      }
      return Math.ceil(((1 - b.tokens) / rate) * 1000);
    },
  };
}

/** Bytes held at once, up to a limit. */
export interface ByteBudget {
  /** Takes `n` bytes; false (taking nothing) when that would pass the limit. */
  take(n: number): boolean;
  /** Whether `take(n)` would succeed now; takes nothing. */
  fits(n: number): boolean;
  /** Bytes taken and not yet given back. */
  held(): number;
  /**
   * Takes `n` bytes, waiting its turn (first come, first served) for them to
   * be given back; false, taking nothing, when they are not free within
   * `waitMs`, when `signal` aborts, or when too many already wait.
   */
  reserve(n: number, waitMs: number, signal?: AbortSignal): Promise<boolean>;
  give(n: number): void;
}

interface Waiter {
  n: number;
  grant(ok: boolean): void;
}

export function byteBudget(limit: number, maxWaiting = 10_000): ByteBudget {
  let used = 0;
  const waiting: Waiter[] = [];
  const wake = () => {
    while (waiting.length > 0 && used + waiting[0]!.n <= limit) {
      const w = waiting.shift()!;
      used += w.n;
      w.grant(true);
    }
  };
  // Nobody passes those already waiting: a steady flow of small takes must
  // not starve a large reservation.
  const fits = (n: number) => waiting.length === 0 && used + n <= limit;
  const take = (n: number) => {
    if (!fits(n)) return false;
    used += n;
    return true;
  };
  return {
    take,
    fits,
    held: () => used,
    reserve: (n, waitMs, signal) => {
      if (waiting.length === 0 && take(n)) return Promise.resolve(true);
      if (n > limit || waiting.length >= maxWaiting || waitMs <= 0 || signal?.aborted) {
        return Promise.resolve(false);
      }
      return new Promise<boolean>((resolve) => {
        const w: Waiter = {
          n,
          grant: (ok) => {
            clearTimeout(timer);
            signal?.removeEventListener("abort", leave);
            resolve(ok);
          },
        };
        const leave = () => {
          const i = waiting.indexOf(w);
          if (i < 0) return;
          waiting.splice(i, 1);
          w.grant(false);
          // A large waiter leaving can let smaller ones behind it in.
          wake();
        };
        const timer = setTimeout(leave, waitMs);
        signal?.addEventListener("abort", leave, { once: true });
        waiting.push(w);
      });
    },
    give: (n) => {
      used -= n;
      wake();
    },
  };
}
