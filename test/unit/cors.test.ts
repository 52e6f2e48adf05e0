import { describe, expect, it } from "vitest";
import { originAllowed } from "../../internal/server/cors.js";

describe("CORS origins", () => {
  const dev = ["http://localhost:*", "http://127.0.0.1:*"];
  it.each([
    ["http://localhost:5173", true],
    ["http://localhost", true],
    ["http://127.0.0.1:3000", true],
    ["https://localhost:5173", false],
    ["http://localhost.evil.example:5173", false],
    ["http://localhost:5173.evil.example", false],
    ["http://evil.example", false],
    ["null", false],
  ])("the development list and %s: %s", (origin, allowed) => {
    expect(originAllowed(dev, origin)).toBe(allowed);
  });

  it("takes exact entries and a lone * as they are", () => {
    expect(originAllowed(["https://app.example.com"], "https://app.example.com")).toBe(true);
    expect(originAllowed(["https://app.example.com"], "https://app.example.com:8443")).toBe(false);
    expect(originAllowed(["*"], "https://anything.example")).toBe(true);
  });
});
