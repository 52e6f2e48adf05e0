import { describe, expect, it } from "vitest";
import { maskEmail, maskName, maskPhone } from "../../internal/pkg/sensitive/mask.js";

// A mask must not tell how long the hidden part is: values of any length
// give masks of one width.
describe("masks for view = MASKED", () => {
  it("When names differ in length, Then their masks have one width and keep the first letter", () => {
    expect(["Al", "Alice", "Alexandria Ocasio", "Zoë"].map(maskName)).toEqual([
      "A***",
      "A***",
      "A***",
      "Z***",
    ]);
    expect(maskName("")).toBe("");
  });

  it("When phones differ in length, Then their masks have one width", () => {
    const masks = ["+8613800138000", "+14155550123", "+442071838750123", "+12345678"].map(
      maskPhone,
    );
    expect(masks).toEqual(["+86****8000", "+14****0123", "+44****0123", "+**********"]);
    expect(new Set(masks.map((m) => m.length))).toEqual(new Set([11]));
  });

  it("When email local parts differ in length, Then only the first character and the domain show", () => {
    expect(["j@example.com", "john.smith@example.com"].map(maskEmail)).toEqual([
      "j***@example.com",
      "j***@example.com",
    ]);
    expect(maskEmail("@nowhere")).toBe("***");
  });
});
