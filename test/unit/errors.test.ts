import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  ErrorReason as KmsReason,
  ErrorReasonSchema as KmsReasonSchema,
} from "../../api/kms/v1/error_reason_pb.js";
import { ErrorReasonSchema as UserReasonSchema } from "../../api/user/v1/error_reason_pb.js";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { BizError } from "../../internal/biz/errors.js";
import { isDatabaseUnavailable, sqlstateOf } from "../../internal/pkg/dberr/dberr.js";
import { codeName, toConnectError, type CommonReason } from "../../internal/server/errors.js";
import { errorStatus } from "../../internal/server/grpc/status.js";
import { ErrorInfoSchema } from "../../third_party/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../third_party/google/rpc/status_pb.js";

describe("the error mapping", () => {
  it("turns a BizError into a coded error with its reason and domain", () => {
    const biz = new BizError(
      "FAILED_PRECONDITION",
      { enum: KmsReasonSchema, value: KmsReason.KEY_REVOKED },
      "key 3 is revoked",
      {
        version: "3",
      },
    );
    const err = toConnectError(biz, KmsService, () => undefined);
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toBe("key 3 is revoked");
    expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({
      reason: "KEY_REVOKED",
      domain: "kms.v1",
      metadata: { version: "3" },
    });
  });

  it("hides an unexpected fault behind INTERNAL and hands the original to the log only", () => {
    const seen: unknown[] = [];
    const fault = new Error("connection to 10.0.0.5 failed for user alice@example.com");
    const err = toConnectError(fault, KmsService, (e) => seen.push(e));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toBe("internal error");
    expect(err.findDetails(ErrorInfoSchema)[0]?.reason).toBe("INTERNAL");
    expect(seen).toEqual([fault]);
  });

  it("writes the same code, message and ErrorInfo into grpc-status-details-bin", () => {
    const biz = new BizError(
      "NOT_FOUND",
      { enum: KmsReasonSchema, value: KmsReason.KEY_NOT_FOUND },
      "no key 9",
    );
    const status = errorStatus(toConnectError(biz, KmsService, () => undefined));
    expect(status["grpc-status"]).toBe("5");
    expect(status["grpc-message"]).toBe("no key 9");
    const bin = Buffer.from(status["grpc-status-details-bin"]!, "base64");
    const decoded = fromBinary(StatusSchema, bin);
    expect(decoded.code).toBe(5);
    expect(decoded.message).toBe("no key 9");
    expect(anyUnpack(decoded.details[0]!, ErrorInfoSchema)).toMatchObject({
      reason: "KEY_NOT_FOUND",
      domain: "kms.v1",
    });
  });

  it("names codes as gRPC does", () => {
    expect(codeName(Code.InvalidArgument)).toBe("INVALID_ARGUMENT");
    expect(codeName(Code.Canceled)).toBe("CANCELLED");
    expect(codeName(Code.DataLoss)).toBe("DATA_LOSS");
  });

  it("keeps an error that already carries a reason", () => {
    const err = new ConnectError("x", Code.NotFound, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "USER_NOT_FOUND", domain: "user.v1" } },
    ]);
    expect(toConnectError(err, KmsService, () => undefined)).toBe(err);
  });
});

describe("error_reason.proto", () => {
  const common: CommonReason[] = [
    "VALIDATION_FAILED",
    "INTERNAL",
    "NOT_IMPLEMENTED",
    "DEADLINE_EXCEEDED",
    "UNAVAILABLE",
    "REQUEST_TOO_LARGE",
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "RATE_LIMITED",
  ];
  it.each([KmsReasonSchema, UserReasonSchema])(
    "$typeName declares every reason the middleware uses",
    (schema) => {
      const names = schema.values.map((v) => v.name.replace(/^ERROR_REASON_/, ""));
      expect(names).toEqual(expect.arrayContaining(common));
    },
  );
});

describe("database unavailability", () => {
  it.each([
    [
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }),
      true,
    ],
    [new Error("Connection terminated unexpectedly"), true],
    [new Error("timeout exceeded when trying to connect"), true],
    [
      Object.assign(new Error("terminating connection due to administrator command"), {
        code: "57P01",
      }),
      true,
    ],
    [Object.assign(new Error("connection failure"), { code: "08006" }), true],
    [new Error("wrapped", { cause: Object.assign(new Error("x"), { code: "ECONNRESET" }) }), true],
    [Object.assign(new Error("duplicate key value"), { code: "23505" }), false],
    [Object.assign(new Error("syntax error"), { code: "42601" }), false],
    [new Error("anything else"), false],
  ])("%s -> %s", (err, expected) => {
    expect(isDatabaseUnavailable(err)).toBe(expected);
  });
});

describe("sqlstateOf", () => {
  it.each([
    [Object.assign(new Error("x"), { code: "22012" }), "22012"],
    [Object.assign(new Error("x"), { code: "57P01" }), "57P01"],
    [Object.assign(new Error("x"), { code: "ECONNRESET" }), undefined],
    [Object.assign(new Error("x"), { code: "EPIPE" }), undefined],
    [Object.assign(new Error("x"), { code: "EPERM" }), undefined],
    [Object.assign(new Error("x"), { code: "P0001" }), "P0001"],
    [Object.assign(new Error("x"), { code: "XX000" }), "XX000"],
    [Object.assign(new Error("x"), { code: "2201" }), undefined],
    [Object.assign(new Error("x"), { code: "22o12" }), undefined],
    [Object.assign(new Error("x"), { code: 22012 }), undefined],
    [new Error("no code"), undefined],
    [undefined, undefined],
    [null, undefined],
  ])("%o -> %s", (err, expected) => {
    expect(sqlstateOf(err)).toBe(expected);
  });
});
