import { describe, expect, it } from "vitest";
import { readAtScrape } from "../../internal/server/metrics.js";

// What a scrape reads from the database: shared while fresh, given up on
// when slow or failing (the series is then left out), a late answer kept.

/** A read whose answer the test gives, counting the calls. */
function deferredRead() {
  const calls: ((v: number) => void)[] = [];
  return {
    calls,
    read: () => new Promise<number>((resolve) => calls.push(resolve)),
  };
}

describe("readAtScrape", () => {
  it("reads once while the answer is fresh, again once it is not", async () => {
    let n = 0;
    const fresh = readAtScrape(async () => ++n, { ttlMs: 60_000, timeoutMs: 1000 });
    expect([await fresh(), await fresh()]).toEqual([1, 1]);
    const stale = readAtScrape(async () => ++n, { ttlMs: 0, timeoutMs: 1000 });
    expect(await stale()).toBe(2);
    expect(await stale()).toBe(3);
  });

  it("answers undefined when the read fails, and reads again next time", async () => {
    let fail = true;
    const read = readAtScrape(
      async () => {
        if (fail) throw new Error("database unreachable");
        return 7;
      },
      { ttlMs: 0, timeoutMs: 1000 },
    );
    expect(await read()).toBeUndefined();
    fail = false;
    expect(await read()).toBe(7);
  });

  it("answers undefined past the timeout; the late answer serves the next scrape", async () => {
    const d = deferredRead();
    const read = readAtScrape(d.read, { ttlMs: 60_000, timeoutMs: 5 });
    expect(await read()).toBeUndefined();
    expect(d.calls).toHaveLength(1);
    d.calls[0]!(42);
    await new Promise((r) => setImmediate(r));
    expect(await read()).toBe(42);
    expect(d.calls).toHaveLength(1);
  });

  it("shares a read in flight between scrapes", async () => {
    const d = deferredRead();
    const read = readAtScrape(d.read, { ttlMs: 60_000, timeoutMs: 1000 });
    const both = Promise.all([read(), read()]);
    await new Promise((r) => setImmediate(r));
    expect(d.calls).toHaveLength(1);
    d.calls[0]!(9);
    expect(await both).toEqual([9, 9]);
  });
});
