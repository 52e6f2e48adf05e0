import { describe, expect, it } from "vitest";
import { median, roundSpread } from "../../bench/lib/stats.js";

// Every benchmark's median and spread come from here: one definition.
describe("bench statistics", () => {
  it("median: the middle value, the mean of the two middle ones for an even count", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(median([])).toBeNaN();
  });

  it("median leaves its input in order", () => {
    const xs = [3, 1, 2];
    median(xs);
    expect(xs).toEqual([3, 1, 2]);
  });

  it("roundSpread: the lowest and highest ratio, none for fewer than two rounds", () => {
    expect(roundSpread([0.71, 0.5, 0.634])).toBe(" (rounds 0.50–0.71)");
    expect(roundSpread([0.7])).toBe("");
    expect(roundSpread([])).toBe("");
  });
});
