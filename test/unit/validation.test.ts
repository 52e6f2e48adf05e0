import { create, type DescMessage, type DescMethodUnary, type Message } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  GetStatusRequestSchema,
  HashFieldRequestSchema,
  KmsService,
} from "../../api/kms/v1/kms_pb.js";
import {
  CreateUserRequestSchema,
  LookupUserRequestSchema,
  UserService,
} from "../../api/user/v1/user_pb.js";
import { BootstrapSchema } from "../../internal/conf/conf_pb.js";
import { hasRules, validation } from "../../internal/server/middleware/validation.js";
import { createCall } from "../../internal/transport/call.js";
import { BadRequestSchema } from "../../third_party/google/rpc/error_details_pb.js";

function check(method: DescMethodUnary, request: Message): ConnectError | undefined {
  const guard = validation();
  try {
    guard(
      createCall({
        service: method.parent,
        method,
        request,
        deadline: undefined,
        transport: "grpc",
        requestHeader: new Headers(),
      }),
    );
    return undefined;
  } catch (err) {
    return err as ConnectError;
  }
}

const hash = (fieldName: string) =>
  check(KmsService.method.hashField, create(HashFieldRequestSchema, { fieldName, value: "v" }));

describe("validation", () => {
  it.each<[string, DescMessage, boolean]>([
    ["a request without any rule", GetStatusRequestSchema, false],
    ["a request with field rules", HashFieldRequestSchema, true],
    ["a request whose only rule is on a oneof or fields in it", LookupUserRequestSchema, true],
    ["a message whose rules are all in messages it holds", BootstrapSchema, true],
  ])("When %s is planned, Then hasRules says %s", (_what, desc, expected) => {
    expect(hasRules(desc, new Set())).toBe(expected);
  });

  it("When a request type has no rule, Then it passes without a walk", () => {
    expect(check(KmsService.method.getStatus, create(GetStatusRequestSchema))).toBeUndefined();
  });

  it.each(["users.email", "email", "a.b_c.d9"])(
    "When a field name matches the pattern (%s), Then the call goes on",
    (name) => {
      expect(hash(name)).toBeUndefined();
    },
  );

  it.each(["Users.email", "users.", "users.email\n", "usérs", "users.😀", ""])(
    "When a field name breaks the pattern (%j), Then INVALID_ARGUMENT names field_name",
    (name) => {
      const err = hash(name);
      expect(err?.code).toBe(Code.InvalidArgument);
      expect(err?.message).toContain("field_name");
      expect(err?.findDetails(BadRequestSchema)[0]?.fieldViolations).toEqual([
        expect.objectContaining({ field: "field_name", reason: "string.pattern" }),
      ]);
    },
  );

  it("When several fields break rules, Then the BadRequest lists every one, the first named", () => {
    const err = check(
      UserService.method.createUser,
      create(CreateUserRequestSchema, {
        username: "1x",
        password: "short",
        email: "nope",
        phone: "555",
      }),
    );
    expect(err?.code).toBe(Code.InvalidArgument);
    const fields = err?.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field);
    expect(fields).toEqual(expect.arrayContaining(["username", "password", "email", "phone"]));
    expect(err?.message).toMatch(/^\[invalid_argument\] invalid username:/);
  });

  it("When a string holds NUL, Then it is refused naming it, before any rule", () => {
    const err = hash("users.email\0");
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.message).toContain("field_name: contains a NUL character");
  });
});
