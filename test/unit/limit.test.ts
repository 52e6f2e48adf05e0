import { describe, expect, it } from "vitest";
import { byteBudget } from "../../internal/pkg/limit/queue.js";

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
