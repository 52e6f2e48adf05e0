import { describe, expect, it } from "vitest";
import { memoryLoginAttempts } from "../../internal/data/login_attempts.js";

describe("in-memory login attempts", () => {
  it("allows the configured attempts, then locks, and a success clears the count", async () => {
    const logins = memoryLoginAttempts({ maxAttempts: 3, lockMs: 60_000 });
    expect([
      await logins.attempt("a"),
      await logins.attempt("a"),
      await logins.attempt("a"),
    ]).toEqual([0, 0, 0]);
    expect(await logins.attempt("a")).toBeGreaterThan(59_000);
    await logins.succeeded("b");
    expect(await logins.attempt("b")).toBe(0);
  });

  it("keeps locks in force when full, dropping unlocked entries instead", async () => {
    const logins = memoryLoginAttempts({ maxAttempts: 2, lockMs: 60_000 }, 10);
    await logins.attempt("locked");
    await logins.attempt("locked");
    for (let i = 0; i < 50; i++) await logins.attempt(`fresh-${i}`);
    expect(await logins.attempt("locked")).toBeGreaterThan(0);
  });
});
