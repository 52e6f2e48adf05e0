import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { errorStatus, percentEncode } from "../../internal/server/grpc/status.js";
import { deadlineOf } from "../../internal/server/grpc/timeout.js";
import { addressBlock } from "../../internal/server/grpc/sessions.js";
import { ErrorInfoSchema } from "../../third_party/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../third_party/google/rpc/status_pb.js";

describe("grpc-timeout", () => {
  it.each([
    ["1H", 3_600_000],
    ["2M", 120_000],
    ["3S", 3000],
    ["45m", 45],
    ["1500u", 1.5],
    ["99999999n", 99.999999],
    ["0S", 0],
  ])("reads %s as %d ms from now", (value, ms) => {
    expect(deadlineOf(value, 1000)).toBeCloseTo(1000 + ms, 6);
  });

  it("has no deadline without the header", () => {
    expect(deadlineOf(undefined, 1000)).toBeUndefined();
  });

  it.each(["", "S", "1", "123456789S", "-1S", "+1S", "1s", "1.5S", "1 S", "1S ", "１S", "1\0S"])(
    "refuses %j",
    (value) => {
      expect(deadlineOf(value, 1000)).toBeNull();
    },
  );
});

describe("grpc-message", () => {
  it("passes printable ASCII through and percent-encodes the rest, % included", () => {
    expect(percentEncode("request larger than 4194304 bytes")).toBe(
      "request larger than 4194304 bytes",
    );
    expect(percentEncode("100% ok")).toBe("100%25 ok");
    expect(percentEncode("line\nbreak")).toBe("line%0Abreak");
    expect(percentEncode("naïve €")).toBe("na%C3%AFve %E2%82%AC");
  });
});

describe("a ConnectError as gRPC trailers", () => {
  it("carries code, message and every detail in unpadded base64", () => {
    const err = new ConnectError("no such user: 50%", Code.NotFound, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "USER_NOT_FOUND", domain: "user.v1" } },
    ]);
    const status = errorStatus(err);
    expect(status["grpc-status"]).toBe("5");
    expect(status["grpc-message"]).toBe("no such user: 50%25");
    const bin = status["grpc-status-details-bin"]!;
    expect(bin).not.toMatch(/=$/);
    const decoded = fromBinary(StatusSchema, Buffer.from(bin, "base64"));
    expect(decoded.code).toBe(5);
    expect(decoded.message).toBe("no such user: 50%");
    expect(anyUnpack(decoded.details[0]!, ErrorInfoSchema)?.reason).toBe("USER_NOT_FOUND");
  });
});

describe("the address block a client is taken to hold", () => {
  it.each([
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:10.0.0.1", "10.0.0.1"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["2001:db8:0:0:1::2", "2001:db8:0:0::/64"],
    ["2001:DB8::", "2001:db8:0:0::/64"],
    ["2001:0db8:0000:0001:ffff:ffff:ffff:ffff", "2001:db8:0:1::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
  ])("%s -> %s", (address, block) => expect(addressBlock(address)).toBe(block));
});
