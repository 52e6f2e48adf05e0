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
 * waiting takes its turn with the others instead of ahead of them. And no
 * key runs in every slot: with two or more, one is always left to the other
 * keys, so one that arrives fresh starts at once instead of waiting for a
 * flood's task to end.
 */
export function fairQueue({ concurrency, capacity, perKey }: FairQueueOptions): FairQueue {
  const perKeyRunning = Math.max(1, concurrency - 1);
  let running = 0;
  // The tag of the task started last: the queue's virtual time.
  let now = 0;
  interface Key {
    held: number;
    running: number;
    next: number;
  }
  // Only keys with tasks in hand: a key that has none costs nothing.
  const keys = new Map<string, Key>();
  const waiting: { tag: number; key: Key; go: () => void }[] = [];
  const start = (k: Key, tag: number) => {
    running++;
    k.running++;
    // A task skipped for its key's share may start after a later tag.
    now = Math.max(now, tag);
  };
  // A slot is free: the lowest tag among the keys that may run one more.
  const dispatch = () => {
    while (running < concurrency) {
      let best = -1;
      for (let i = 0; i < waiting.length; i++) {
        const w = waiting[i]!;
        if (w.key.running >= perKeyRunning) continue;
        if (best < 0 || w.tag < waiting[best]!.tag) best = i;
      }
      if (best < 0) return;
      const [w] = waiting.splice(best, 1);
      start(w!.key, w!.tag);
      w!.go();
    }
  };
  return {
    async run(key, task) {
      let k = keys.get(key);
      if (k && k.held >= perKey) throw new QueueFullError(`more than ${perKey} at once`);
      const startsNow = running < concurrency && (k?.running ?? 0) < perKeyRunning;
      if (!startsNow && waiting.length >= capacity) throw new QueueFullError("queue full");
      if (!k) {
        k = { held: 0, running: 0, next: now };
        keys.set(key, k);
      }
      k.held++;
      const tag = Math.max(now, k.next);
      k.next = tag + 1;
      const mine = k;
      if (startsNow) start(mine, tag);
      else await new Promise<void>((go) => waiting.push({ tag, key: mine, go }));
      try {
        return await task();
      } finally {
        running--;
        mine.running--;
        if (--mine.held === 0) keys.delete(key);
        dispatch();
      }
    },
  };
}
