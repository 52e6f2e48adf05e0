/** Thrown when work is refused for now: the caller should retry later. */
export class QueueFullError extends Error {
  override name = "QueueFullError";
}

/** Expensive work admitted per key (a caller): bounded for each, fair between them. */
export interface FairQueue {
  /**
   * Runs `task` for `key` when a slot is free. Refuses at once when `key`
   * already has `perKey` tasks running or waiting, or when `capacity` wait.
   */
  run<T>(key: string, task: () => Promise<T>): Promise<T>;
}

export interface FairQueueOptions {
  /** Tasks running at once. */
  concurrency: number;
  /** Tasks waiting for a slot, all keys together. */
  capacity: number;
  /** Tasks one key may have running or waiting. */
  perKey: number;
}

/**
 * At most `concurrency` tasks at once; the next slot goes to the waiting task
 * with the lowest start tag (start-time fair queuing, every task costing one):
 * a key's tasks are numbered on from the last one it started, a key with
 * nothing in hand starts at the current tag. So a caller with many tasks
 * waiting takes its turn with the others instead of ahead of them, and one
 * that arrives fresh waits for no more than the task running.
 */
export function fairQueue({ concurrency, capacity, perKey }: FairQueueOptions): FairQueue {
  let running = 0;
  // The tag of the task started last: the queue's virtual time.
  let now = 0;
  // Only keys with tasks in hand: a key that has none costs nothing.
  const keys = new Map<string, { held: number; next: number }>();
  const waiting: { tag: number; go: () => void }[] = [];
  const startNext = () => {
    if (waiting.length === 0) {
      running--;
      return;
    }
    // Lowest tag, the earliest among equals; `capacity` bounds the scan.
    let best = 0;
    for (let i = 1; i < waiting.length; i++) if (waiting[i]!.tag < waiting[best]!.tag) best = i;
    const [w] = waiting.splice(best, 1);
    now = w!.tag;
    w!.go();
  };
  return {
    async run(key, task) {
      let k = keys.get(key);
      if (k && k.held >= perKey) throw new QueueFullError(`more than ${perKey} at once`);
      const free = running < concurrency;
      if (!free && waiting.length >= capacity) throw new QueueFullError("queue full");
      if (!k) {
        k = { held: 0, next: now };
        keys.set(key, k);
      }
      k.held++;
      const tag = Math.max(now, k.next);
      k.next = tag + 1;
      if (free) {
        running++;
        now = tag;
      } else await new Promise<void>((go) => waiting.push({ tag, go }));
      try {
        return await task();
      } finally {
        if (--k.held === 0) keys.delete(key);
        // Hand the slot straight to the next in line.
        startNext();
      }
    },
  };
}
