import type { ByteBudget } from "./queue.js";

export interface GiveBackOptions {
  /** Bytes that must have passed through since the last collection. */
  burstBytes: number;
  /** How long nothing must be held before collecting. */
  quietMs: number;
  /** A major collection; where it is undefined the budget is returned as it is. */
  collect: (() => void) | undefined;
}

/**
 * A budget that gives memory back after a burst of large requests. Their
 * bodies arrive as many small buffers that V8 frees only at a collection,
 * and a server that goes quiet after the burst allocates nothing that would
 * start one: it would keep hundreds of MB it no longer uses. So once
 * `burstBytes` have passed and nothing has been held for `quietMs`, it asks
 * for one major collection. (That the freed memory leaves the process, not
 * only V8, is malloc's part: see package.json's config.malloc_mmap_threshold.)
 */
export function givingBack(budget: ByteBudget, opts: GiveBackOptions): ByteBudget {
  const collect = opts.collect;
  if (!collect) return budget;
  let passed = 0;
  // When something was last taken or given back.
  let lastUse = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (ms: number) => {
    timer = setTimeout(quiet, ms);
    timer.unref();
  };
  const quiet = () => {
    timer = undefined;
    if (budget.held() > 0) return;
    const left = lastUse + opts.quietMs - performance.now();
    if (left > 0) return arm(left);
    passed = 0;
    collect();
  };
  const used = (ok: boolean) => {
    if (ok) lastUse = performance.now();
    return ok;
  };
  return {
    ...budget,
    take: (n) => used(budget.take(n)),
    reserve: async (n, waitMs, signal) => used(await budget.reserve(n, waitMs, signal)),
    give: (n) => {
      budget.give(n);
      passed += n;
      lastUse = performance.now();
      if (budget.held() > 0 || passed < opts.burstBytes || timer) return;
      arm(opts.quietMs);
    },
  };
}

/**
 * V8's collector, where Node was started with --expose-gc (`npm start`
 * passes it: package.json's config.node_flags); else undefined.
 */
export function majorCollection(): (() => void) | undefined {
  const gc = (globalThis as { gc?: (options?: { type: "major" }) => void }).gc;
  return gc && (() => gc({ type: "major" }));
}
