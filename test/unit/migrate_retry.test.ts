import { describe, expect, it } from "vitest";
import type { StepFailure } from "../../internal/migrate/apply.js";
import { backoffMs, notRetryable } from "../../internal/migrate/retry.js";

const failure = (over: Partial<StepFailure>): StepFailure => ({
  name: "000002_x",
  direction: "up",
  at: "000002_x.up.sql:1",
  message: "canceling statement due to lock timeout",
  code: "55P03",
  transactional: true,
  statementsApplied: 0,
  dropped: [],
  connectionLost: false,
  ...over,
});

describe("lock_timeout retry", () => {
  it("waits 500ms doubling, half of it random, bounded", () => {
    expect([1, 2, 3, 4].map((n) => backoffMs(n, () => 1))).toEqual([500, 1000, 2000, 4000]);
    expect([1, 2, 3, 4].map((n) => backoffMs(n, () => 0))).toEqual([250, 500, 1000, 2000]);
    expect(backoffMs(40, () => 1)).toBe(10_000);
  });

  it("retries a transactional file, or one outside a transaction refused at its first statement", () => {
    expect(notRetryable(failure({}))).toBeUndefined();
    expect(notRetryable(failure({ transactional: false }))).toBeUndefined();
  });

  it("does not retry once a statement outside a transaction has run, nor after a lost connection", () => {
    expect(notRetryable(failure({ transactional: false, statementsApplied: 1 }))).toMatch(
      /already run/,
    );
    expect(
      notRetryable(
        failure({
          transactional: false,
          ownTransactions: { finalThrough: "000002_x.up.sql:3", rolledBackFrom: null },
        }),
      ),
    ).toMatch(/already run/);
    expect(notRetryable(failure({ connectionLost: true }))).toMatch(/connection was lost/);
  });
});
