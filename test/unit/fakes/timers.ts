import { vi } from "vitest";

/**
 * Fake timers (setTimeout, clearTimeout, performance, and Date when asked),
 * with setTimeout watched, for a due queue: it keeps at most one timer set,
 * and leaves it set but unref'd once nothing is queued.
 */
export function fakeQueueTimers(alsoDate = false): void {
  vi.useFakeTimers({
    toFake: ["setTimeout", "clearTimeout", "performance", ...(alsoDate ? ["Date" as const] : [])],
  });
  vi.spyOn(globalThis, "setTimeout");
}

/** Whether the queue's timer is set and keeps the process alive (the last one made). */
export function queueTimerAlive(): boolean {
  const last = vi.mocked(setTimeout).mock.results.at(-1)?.value as NodeJS.Timeout | undefined;
  return vi.getTimerCount() === 1 && last?.hasRef() === true;
}
