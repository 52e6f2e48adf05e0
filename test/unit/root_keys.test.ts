import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { RootKeys } from "../../internal/biz/kms/root_keys.js";
import { rootKeyId } from "../../internal/pkg/kms/rootkey.js";
import { wrapKey } from "../../internal/pkg/kms/wrap.js";

describe("root keys during a rotation's window", () => {
  const current = randomBytes(32);
  const previous = randomBytes(32);
  const label = "data-key:v1:AES-256-GCM";
  const key = randomBytes(32);
  const underPrevious = wrapKey(previous, key, label);

  it("unwrap under the previous key until the window ends, even in a process that keeps running", () => {
    let now = Date.parse("2027-01-01T00:00:00Z");
    const roots = new RootKeys(
      Buffer.from(current),
      { key: Buffer.from(previous), until: new Date("2027-01-02T00:00:00Z") },
      () => now,
    );
    expect(roots.unwrap(underPrevious, label)).toEqual({ key, id: rootKeyId(previous) });
    expect(roots.holds(rootKeyId(previous))).toBe(true);
    now = Date.parse("2027-01-02T00:00:00Z");
    expect(() => roots.unwrap(underPrevious, label)).toThrow();
    expect(roots.holds(rootKeyId(previous))).toBe(false);
    expect(roots.previousId).toBeUndefined();
  });

  it("stop accepting the previous key once dropped (the stored keys are under the current one)", () => {
    const roots = new RootKeys(Buffer.from(current), {
      key: Buffer.from(previous),
      until: new Date(Date.now() + 3600_000),
    });
    expect(roots.unwrap(underPrevious, label).id).toBe(rootKeyId(previous));
    roots.dropPrevious();
    expect(() => roots.unwrap(underPrevious, label)).toThrow();
    expect(() => roots.wrap(rootKeyId(previous), key, label)).toThrow(/not held/);
  });

  it("never use a previous key whose window had ended at start", () => {
    const roots = new RootKeys(Buffer.from(current), {
      key: Buffer.from(previous),
      until: new Date(Date.now() - 1000),
    });
    expect(roots.expiredPreviousId).toBe(rootKeyId(previous));
    expect(() => roots.unwrap(underPrevious, label)).toThrow();
  });
});
