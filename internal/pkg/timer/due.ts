/** Something to run once its time (performance.now() milliseconds) has come. */
export interface Due {
  readonly dueAt: number;
  /** The queue's bookkeeping: where the item sits, -1 when it is not queued. */
  slot: number;
  fire(): void;
}

/** Runs each item added at its time, unless it is deleted first. */
export interface DueQueue {
  add(item: Due): void;
  /** Takes the item out (nothing when it already fired or was never added). */
  delete(item: Due): void;
  readonly size: number;
}

// Node caps a timer's delay at 2^31 - 1 ms (and fires one asked for more at once).
const longestDelay = 2 ** 31 - 1;

/**
 * One Node timer for many items, in a binary heap ordered by time: adding
 * and deleting cost O(log n) and no allocation, where a timer each cost a
 * Timeout object and a call into libuv to set and another to clear. The
 * timer is set for the earliest item when that one is added; items deleted
 * before it fires leave it set (it then finds nothing due and is set again
 * for the earliest left). Once nothing is queued it stays set but unref'd,
 * so that it keeps no process alive, and the next item takes it back: under
 * load a queue often empties between one call and the next (a read timeout
 * lasts only while a request is read), and clearing the timer then cost a
 * new one for nearly every call. An item never fires before its time: a
 * timer that Node runs early is set again for what is left.
 */
export function dueQueue(): DueQueue {
  const heap: Due[] = [];
  let timer: NodeJS.Timeout | undefined;
  // When the timer is set to fire; Infinity when it is not set.
  let armedAt = Infinity;

  const place = (item: Due, slot: number) => {
    heap[slot] = item;
    item.slot = slot;
  };
  const up = (item: Due, slot: number) => {
    while (slot > 0) {
      const parent = (slot - 1) >> 1;
      const above = heap[parent]!;
      if (above.dueAt <= item.dueAt) break;
      place(above, slot);
      slot = parent;
    }
    place(item, slot);
  };
  const down = (item: Due, slot: number) => {
    const n = heap.length;
    for (;;) {
      let child = 2 * slot + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1]!.dueAt < heap[child]!.dueAt) child++;
      const below = heap[child]!;
      if (below.dueAt >= item.dueAt) break;
      place(below, slot);
      slot = child;
    }
    place(item, slot);
  };
  const remove = (item: Due) => {
    const slot = item.slot;
    item.slot = -1;
    const last = heap.pop()!;
    if (last === item) return;
    // The last item takes the hole, then moves to where it belongs.
    if (slot > 0 && heap[(slot - 1) >> 1]!.dueAt > last.dueAt) up(last, slot);
    else down(last, slot);
  };
  const arm = (at: number) => {
    clearTimeout(timer);
    armedAt = at;
    const delay = Math.min(longestDelay, Math.max(0, Math.ceil(at - performance.now())));
    timer = setTimeout(ring, delay);
  };
  const ring = () => {
    timer = undefined;
    armedAt = Infinity;
    const now = performance.now();
    try {
      for (let first = heap[0]; first !== undefined && first.dueAt <= now; first = heap[0]) {
        remove(first);
        first.fire();
      }
    } finally {
      if (heap.length > 0) arm(heap[0]!.dueAt);
    }
  };

  return {
    add(item) {
      heap.push(item);
      up(item, heap.length - 1);
      if (item.dueAt < armedAt) arm(item.dueAt);
      else if (heap.length === 1) timer?.ref();
    },
    delete(item) {
      if (item.slot < 0 || heap[item.slot] !== item) return;
      remove(item);
      if (heap.length === 0) timer?.unref();
    },
    get size() {
      return heap.length;
    },
  };
}
