import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { spawnSync } from "node:child_process";
import { dueQueue, type Due } from "../../internal/pkg/timer/due.js";
import { fakeQueueTimers, queueTimerAlive } from "./fakes/timers.js";

// Fake clocks: performance.now() and the timers move only when told.
beforeEach(() => {
  fakeQueueTimers();
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

function item(dueIn: number, fired: number[], name = dueIn): Due {
  return {
    dueAt: performance.now() + dueIn,
    slot: -1,
    fire: () => fired.push(name),
  };
}

describe("dueQueue", () => {
  it("When items are due at different times, Then each fires at its time, not before, by one timer", () => {
    const fired: number[] = [];
    const queue = dueQueue();
    for (const ms of [30, 10, 20]) queue.add(item(ms, fired));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(9);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([10]);
    vi.advanceTimersByTime(15);
    expect(fired).toEqual([10, 20]);
    vi.advanceTimersByTime(5);
    expect(fired).toEqual([10, 20, 30]);
    expect(queue.size).toBe(0);
  });

  it("When an item is deleted before its time, Then it never fires, and deleting it again does nothing", () => {
    const fired: number[] = [];
    const queue = dueQueue();
    const early = item(10, fired);
    queue.add(early);
    queue.add(item(20, fired));
    queue.delete(early);
    queue.delete(early);
    vi.advanceTimersByTime(50);
    expect(fired).toEqual([20]);
  });

  it("When the last item leaves, Then its timer keeps the process alive no longer, and the next item takes it back", () => {
    const queue = dueQueue();
    const fired: number[] = [];
    const a = item(1000, fired);
    const b = item(2000, fired);
    queue.add(a);
    queue.add(b);
    queue.delete(b);
    expect(queueTimerAlive()).toBe(true);
    queue.delete(a);
    expect(queueTimerAlive()).toBe(false);
    // Set for a, which is gone: c, due later, waits on the same timer, kept alive again.
    queue.add(item(1500, fired, 3));
    expect(vi.getTimerCount()).toBe(1);
    expect(queueTimerAlive()).toBe(true);
    vi.advanceTimersByTime(1000);
    expect(fired).toEqual([]);
    expect(queueTimerAlive()).toBe(true);
    vi.advanceTimersByTime(500);
    expect(fired).toEqual([3]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("When items come and go one at a time, Then one timer serves them all", () => {
    const queue = dueQueue();
    const fired: number[] = [];
    for (let i = 0; i < 100; i++) {
      const x = item(1000, fired, i);
      queue.add(x);
      vi.advanceTimersByTime(1);
      queue.delete(x);
    }
    expect(setTimeout).toHaveBeenCalledTimes(1);
    expect(queueTimerAlive()).toBe(false);
    expect(fired).toEqual([]);
  });

  it("When an earlier item arrives after a later one, Then the timer is moved to it", () => {
    const fired: number[] = [];
    const queue = dueQueue();
    queue.add(item(1000, fired));
    queue.add(item(5, fired));
    vi.advanceTimersByTime(5);
    expect(fired).toEqual([5]);
  });

  it("When thousands come and go in any order, Then exactly those left fire, in time order", () => {
    const fired: number[] = [];
    const queue = dueQueue();
    let x = 7;
    const next = () => (x = (x * 1103515245 + 12345) % 2 ** 31);
    const items = Array.from({ length: 3000 }, (_, i) => item(next() % 5000, fired, i));
    for (const it of items) queue.add(it);
    const deleted = new Set(items.filter((_, i) => i % 3 === 0 || next() % 5 === 0));
    for (const it of deleted) queue.delete(it);
    expect(queue.size).toBe(items.length - deleted.size);
    vi.advanceTimersByTime(5000);
    const expected = items
      .filter((it) => !deleted.has(it))
      .sort((a, b) => a.dueAt - b.dueAt)
      .map((it) => it.dueAt);
    expect(fired.map((i) => items[i]!.dueAt)).toEqual(expected);
    expect(fired.every((i) => !deleted.has(items[i]!))).toBe(true);
  });

  it("When a time is past Node's longest delay, Then it waits, rather than firing at once", () => {
    const fired: number[] = [];
    const queue = dueQueue();
    queue.add(item(2 ** 32, fired));
    vi.advanceTimersByTime(2 ** 31);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(2 ** 31);
    expect(fired).toHaveLength(1);
  });
});

describe("dueQueue in a real process", () => {
  it(
    "When its only item was deleted, Then the process exits without waiting for the item's time",
    {
      timeout: 40_000,
    },
    () => {
      const due = new URL("../../internal/pkg/timer/due.ts", import.meta.url).pathname;
      const script = `
      const { dueQueue } = await import(${JSON.stringify(due)});
      const queue = dueQueue();
      const hour = { dueAt: performance.now() + 3_600_000, slot: -1, fire() { process.exit(3); } };
      queue.add(hour);
      queue.delete(hour);
    `;
      // A timer still keeping the process alive would hold it for the hour: spawnSync's timeout kills it.
      const run = spawnSync(
        process.execPath,
        ["--import", "tsx", "--input-type=module", "-e", script],
        {
          timeout: 60_000,
          encoding: "utf8",
        },
      );
      expect(run.stderr).toBe("");
      expect(run.signal).toBeNull();
      expect(run.status).toBe(0);
    },
  );
});
