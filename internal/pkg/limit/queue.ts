/** Thrown by a bounded queue that is full: the caller should retry later. */
export class QueueFullError extends Error {
  override name = "QueueFullError";
}

export interface BoundedQueue {
  /** Runs `task` when a slot is free; refuses at once when too many wait. */
  run<T>(task: () => Promise<T>): Promise<T>;
}

/**
 * At most `concurrency` tasks at once and at most `capacity` waiting for a
 * slot: work that would only queue up is refused instead of piling up.
 */
export function boundedQueue(concurrency: number, capacity: number): BoundedQueue {
  let running = 0;
  const waiting: (() => void)[] = [];
  return {
    async run(task) {
      if (running < concurrency) running++;
      else if (waiting.length >= capacity) throw new QueueFullError("queue full");
      else await new Promise<void>((resolve) => waiting.push(resolve));
      try {
        return await task();
      } finally {
        // Hand the slot straight to the next in line.
        const next = waiting.shift();
        if (next) next();
        else running--;
      }
    },
  };
}

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
  give(n: number): void;
}

export function byteBudget(limit: number): ByteBudget {
  let used = 0;
  return {
    take: (n) => {
      if (used + n > limit) return false;
      used += n;
      return true;
    },
    give: (n) => {
      used -= n;
    },
  };
}
