import { describe, expect, it } from "vitest";
import { createContextKey, emptyContextValues } from "../../internal/transport/context_values.js";

describe("per-call context values", () => {
  it("When a key was never attached, Then it reads its default", () => {
    const key = createContextKey(7, "seven");
    expect(emptyContextValues.get(key)).toBe(7);
  });

  it("When a value is attached, Then only the new values hold it, and the newest value under a key wins", () => {
    const a = createContextKey<string | undefined>(undefined);
    const b = createContextKey(0);
    const one = emptyContextValues.with(a, "x");
    const two = one.with(b, 2).with(a, "y");
    expect(emptyContextValues.get(a)).toBeUndefined();
    expect(one.get(a)).toBe("x");
    expect(one.get(b)).toBe(0);
    expect(two.get(a)).toBe("y");
    expect(two.get(b)).toBe(2);
  });

  it("When two keys share a default and a description, Then they are still two keys", () => {
    const a = createContextKey(0, "n");
    const b = createContextKey(0, "n");
    expect(emptyContextValues.with(a, 1).get(b)).toBe(0);
  });
});
