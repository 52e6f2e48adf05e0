import { describe, expect, it } from "vitest";
import { addressKey, peerLimit } from "../../internal/server/middleware/peer_limit.js";

describe("addressKey", () => {
  it.each([
    ["203.0.113.7", "203.0.113.7"],
    ["::ffff:203.0.113.7", "203.0.113.7"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:DB8:1:2::9", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["1:2::3:4:5:6:7", "1:2:0:3::/64"],
    ["::1", "0:0:0:0::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
    ["64:ff9b::192.0.2.1", "64:ff9b:0:0::/64"],
  ])("When the address is %s, Then it counts as %s", (address, key) => {
    expect(addressKey(address)).toBe(key);
  });

  it("When two addresses share a /64, Then they share one count", () => {
    expect(addressKey("2001:db8:1:2::a")).toBe(addressKey("2001:db8:1:2:ffff::b"));
  });
});

describe("peerLimit", () => {
  it("When the limit is 0, Then there is none", () => {
    expect(peerLimit(0, 10)).toBeUndefined();
  });

  it("When an address fails past its burst, Then that failure and later calls are refused, other addresses not", () => {
    const limit = peerLimit(1, 3)!;
    expect([1, 2, 3].map(() => limit.failed("198.51.100.1"))).toEqual([0, 0, 0]);
    expect(limit.waitMs("198.51.100.1")).toBe(0);
    const wait = limit.failed("198.51.100.1");
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(60_000);
    expect(limit.waitMs("198.51.100.1")).toBeGreaterThan(0);
    expect(limit.waitMs("::ffff:198.51.100.1")).toBeGreaterThan(0);
    expect(limit.waitMs("198.51.100.2")).toBe(0);
    expect(limit.failed("198.51.100.2")).toBe(0);
  });
});
