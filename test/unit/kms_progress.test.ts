import { describe, expect, it } from "vitest";
import { barCounts } from "../../cmd/kms/progress.js";

const status = (done: number, remaining: number) => ({
  rowsDone: BigInt(done),
  rowsRemaining: BigInt(remaining),
  rowsPerSecond: 10,
  rowsFailed: 0n,
});

describe("the kms progress bar's figures", () => {
  it("When the total holds still, Then the bar shows it plain", () => {
    const counts = barCounts();
    const shown = [status(0, 60), status(20, 40), status(60, 0)].map(counts);
    expect(shown.map((c) => [c.done, c.total, c.payload.growing])).toEqual([
      [0, 60, ""],
      [20, 60, ""],
      [60, 60, ""],
    ]);
  });

  it("When the total grows while the job runs (20/63, then 68/136), Then the bar says so from then on", () => {
    const counts = barCounts();
    const shown = [status(20, 43), status(68, 68), status(136, 0)].map(counts);
    expect(shown.map((c) => [c.done, c.total, c.payload.growing])).toEqual([
      [20, 63, ""],
      [68, 136, " (total growing, was 63)"],
      [136, 136, " (total growing, was 63)"],
    ]);
  });
});
