import { describe, expect, it, vi } from "vitest";
import { fairQueue, QueueFullError } from "../../internal/pkg/limit/fair_queue.js";
import { byteBudget } from "../../internal/pkg/limit/queue.js";
import { givingBack } from "../../internal/pkg/limit/give_back.js";
import { judgeLength, payChunk } from "../../internal/server/body_budget.js";
import type { Request } from "../../internal/server/http_routes.js";

describe("byte budget", () => {
  it("takes only what fits, and gives back", () => {
    const budget = byteBudget(10);
    expect(budget.take(6)).toBe(true);
    expect(budget.take(5)).toBe(false);
    budget.give(6);
    expect(budget.take(10)).toBe(true);
  });

  it("lets reservations wait their turn, first come first served, as bytes come back", async () => {
    const budget = byteBudget(10);
    expect(budget.take(10)).toBe(true);
    const order: string[] = [];
    const big = budget.reserve(8, 60_000).then((ok) => order.push(`big ${ok}`));
    const small = budget.reserve(2, 60_000).then((ok) => order.push(`small ${ok}`));
    // A small one does not pass the big one waiting before it.
    budget.give(3);
    await Promise.resolve();
    expect(order).toEqual([]);
    budget.give(7);
    await Promise.all([big, small]);
    expect(order).toEqual(["big true", "small true"]);
    expect(budget.take(1)).toBe(false);
  });

  it("lets nothing pass a reservation already waiting", async () => {
    const budget = byteBudget(10);
    expect(budget.take(6)).toBe(true);
    const big = budget.reserve(8, 60_000);
    expect(budget.take(1)).toBe(false);
    budget.give(6);
    expect(await big).toBe(true);
  });

  it("refuses, taking nothing, when the wait runs out, the caller leaves, too many wait, or it can never fit", async () => {
    const budget = byteBudget(10, 2);
    expect(budget.take(10)).toBe(true);
    expect(await budget.reserve(1, 5)).toBe(false);
    const left = new AbortController();
    const leaving = budget.reserve(1, 60_000, left.signal);
    const staying = budget.reserve(1, 60_000);
    expect(await budget.reserve(1, 60_000)).toBe(false); // two already wait
    left.abort();
    expect(await leaving).toBe(false);
    expect(await budget.reserve(11, 60_000)).toBe(false);
    budget.give(10);
    expect(await staying).toBe(true);
    expect(budget.take(9)).toBe(true);
    expect(budget.take(1)).toBe(false);
  });
});

describe("giving memory back after a burst", () => {
  it("collects once, when the burst has passed and nothing is held for the quiet time", async () => {
    vi.useFakeTimers();
    try {
      let collections = 0;
      const budget = givingBack(byteBudget(100), {
        burstBytes: 50,
        quietMs: 1000,
        collect: () => collections++,
      });
      expect(budget.take(40)).toBe(true);
      budget.give(40);
      vi.advanceTimersByTime(5000);
      expect(collections, "under the burst: nothing").toBe(0);
      expect(budget.take(20)).toBe(true);
      expect(await budget.reserve(30, 10)).toBe(true);
      budget.give(20);
      vi.advanceTimersByTime(5000);
      expect(collections, "something still held").toBe(0);
      budget.give(30);
      vi.advanceTimersByTime(500);
      // Taken again before the quiet time ends: no collection while it is held.
      expect(budget.take(10)).toBe(true);
      vi.advanceTimersByTime(1000);
      expect(collections).toBe(0);
      budget.give(10);
      vi.advanceTimersByTime(1000);
      expect(collections).toBe(1);
      vi.advanceTimersByTime(10_000);
      expect(collections, "once per burst").toBe(1);
      // Busy again: a collection waits for a whole quiet second after the last use.
      for (let i = 0; i < 10; i++) {
        expect(budget.take(60)).toBe(true);
        vi.advanceTimersByTime(10);
        budget.give(60);
        vi.advanceTimersByTime(300);
      }
      expect(collections, "never a whole second without use").toBe(1);
      vi.advanceTimersByTime(1000);
      expect(collections).toBe(2);
      // The inner budget is what it was.
      expect(budget.take(100)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("is the budget itself where there is no collector (Node without --expose-gc)", () => {
    const inner = byteBudget(10);
    expect(givingBack(inner, { burstBytes: 1, quietMs: 1, collect: undefined })).toBe(inner);
  });
});

describe("paying for a request body", () => {
  const req = (length?: string) =>
    ({ headers: length === undefined ? {} : { "content-length": length } }) as Request;

  it("refuses by its announced length before reading, taking nothing", () => {
    const budget = byteBudget(100);
    expect(judgeLength(req("30"), budget, 40)).toBe("fits");
    expect(judgeLength(req("41"), budget, 40)).toBe("too_large");
    expect(budget.take(50)).toBe(true);
    expect(judgeLength(req("30"), budget, 40)).toBe("busy");
    expect(judgeLength(req("25"), budget, 40)).toBe("fits");
    // Nothing was taken by judging: a client announcing bodies it never sends holds nothing.
    budget.give(50);
    expect(budget.take(100)).toBe(true);
    budget.give(100);
  });

  it("lets an empty body through even while a reservation waits", async () => {
    const budget = byteBudget(10);
    expect(budget.take(10)).toBe(true);
    const waiting = budget.reserve(5, 1000);
    expect(judgeLength(req("0"), budget, 40)).toBe("fits");
    expect(judgeLength(req("1"), budget, 40)).toBe("busy");
    budget.give(10);
    expect(await waiting).toBe(true);
  });

  it("reads no length from anything but digits", () => {
    const budget = byteBudget(100);
    for (const length of [undefined, "", "-1", "1e3", " 3", "0x10", "99999999999999999999"])
      expect(judgeLength(req(length), budget, 40), String(length)).toBe("unknown");
  });

  it("pays twice each chunk as it arrives, or refuses it taking nothing", () => {
    const budget = byteBudget(100);
    const hold = { bytes: 0 };
    expect(payChunk(budget, hold, 20)).toBe(true);
    expect(hold.bytes).toBe(40);
    expect(payChunk(budget, hold, 40)).toBe(false);
    expect(hold.bytes).toBe(40);
  });
});

describe("fair queue", () => {
  /** A task that runs until `finish()`; `started` tells whether it began. */
  const held = () => {
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    const t = { started: false, finish, task: async () => ((t.started = true), done) };
    return t;
  };
  const settle = () => new Promise((r) => setImmediate(r));

  it("When one key has its share in hand, Then its next task is refused at once and other keys still wait their turn", async () => {
    const queue = fairQueue({ concurrency: 1, capacity: 10, perKey: 2 });
    const [a1, a2, b1] = [held(), held(), held()];
    const runs = [queue.run("a", a1.task), queue.run("a", a2.task), queue.run("b", b1.task)];
    await expect(queue.run("a", async () => 0)).rejects.toBeInstanceOf(QueueFullError);
    a1.finish();
    a2.finish();
    b1.finish();
    await Promise.all(runs);
    // Once its tasks are done, the key has its whole share again.
    expect(await queue.run("a", async () => "again")).toBe("again");
  });

  it("When a key floods the queue, Then a key arriving later is served next, not behind the flood", async () => {
    const queue = fairQueue({ concurrency: 1, capacity: 10, perKey: 4 });
    const order: string[] = [];
    const tasks = new Map<string, ReturnType<typeof held>>();
    const run = (key: string, name: string) => {
      const t = held();
      tasks.set(name, t);
      return queue.run(key, () => (order.push(name), t.task()));
    };
    const all = [run("flood", "f1"), run("flood", "f2"), run("flood", "f3"), run("flood", "f4")];
    all.push(run("other", "o1"));
    for (const name of ["f1", "o1", "f2", "f3", "f4"]) {
      await settle();
      tasks.get(name)!.finish();
    }
    await Promise.all(all);
    expect(order).toEqual(["f1", "o1", "f2", "f3", "f4"]);
  });

  it("When two keys both keep tasks waiting, Then they take turns", async () => {
    const queue = fairQueue({ concurrency: 1, capacity: 10, perKey: 3 });
    const order: string[] = [];
    const all: Promise<unknown>[] = [];
    for (const key of ["a", "a", "a", "b", "b", "b"])
      all.push(queue.run(key, async () => order.push(key)));
    await Promise.all(all);
    expect(order).toEqual(["a", "b", "a", "b", "a", "b"]);
  });

  it("When a key floods two slots, Then it runs in one and a key arriving later starts at once in the other", async () => {
    const queue = fairQueue({ concurrency: 2, capacity: 10, perKey: 4 });
    const started: string[] = [];
    const tasks = new Map<string, ReturnType<typeof held>>();
    const run = (key: string, name: string) => {
      const t = held();
      tasks.set(name, t);
      return queue.run(key, () => (started.push(name), t.task()));
    };
    const all = [run("flood", "f1"), run("flood", "f2"), run("flood", "f3")];
    await settle();
    expect(started).toEqual(["f1"]);
    all.push(run("other", "o1"));
    await settle();
    expect(started).toEqual(["f1", "o1"]);
    for (const name of ["f1", "o1", "f2", "f3"]) {
      tasks.get(name)!.finish();
      await settle();
    }
    await Promise.all(all);
    expect(started).toEqual(["f1", "o1", "f2", "f3"]);
  });

  it("When the queue is full, Then any key is refused at once", async () => {
    const queue = fairQueue({ concurrency: 1, capacity: 1, perKey: 5 });
    const [a, b] = [held(), held()];
    const runs = [queue.run("a", a.task), queue.run("b", b.task)];
    await expect(queue.run("c", async () => 0)).rejects.toBeInstanceOf(QueueFullError);
    a.finish();
    b.finish();
    await Promise.all(runs);
  });
});
