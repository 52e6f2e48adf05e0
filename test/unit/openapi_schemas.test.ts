import type { DescMessage } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  AuditEventSchema,
  DataKeySchema,
  EncryptFieldRequestSchema,
  GetDataKeyRequestSchema,
  ListDataKeysResponseSchema,
  StartReencryptionRequestSchema,
} from "../../api/kms/v1/kms_pb.js";
import {
  CreateUserRequestSchema,
  ListUsersRequestSchema,
  UpdateUserRequestSchema,
  UserSchema,
} from "../../api/user/v1/user_pb.js";
import { SchemaSet } from "../../cmd/protoc-gen-openapi/schemas.js";

// cmd/protoc-gen-openapi's field mapping, on the API's own descriptors: proto3
// JSON's forms and the buf.validate rules said in JSON Schema.

const fieldOf = (m: DescMessage, name: string) => {
  const schemas = new SchemaSet();
  return { schema: schemas.value(m.fields.find((f) => f.name === name)!), schemas };
};

describe("protoc-gen-openapi schemas", () => {
  it.each([
    [UserSchema, "id", { type: "string", format: "int64" }],
    [DataKeySchema, "encryption_count", { type: "string", format: "uint64" }],
    [DataKeySchema, "version", { type: "integer", format: "uint32", minimum: 0 }],
    [DataKeySchema, "created_at", { type: "string", format: "date-time" }],
    [DataKeySchema, "metadata", { type: "object", additionalProperties: true }],
    [EncryptFieldRequestSchema, "plaintext", { type: "string", format: "byte" }],
    [AuditEventSchema, "details", { type: "object", additionalProperties: { type: "string" } }],
    [UserSchema, "username", { type: "string" }],
  ])("%s.%s in proto3 JSON", (m, name, expected) => {
    expect(fieldOf(m, name).schema).toEqual(expected);
  });

  it("writes a Duration as its JSON string", () => {
    const { schema } = fieldOf(StartReencryptionRequestSchema, "pause");
    expect(schema).toMatchObject({ type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$" });
    expect(new RegExp(schema.pattern as string).test("1.5s")).toBe(true);
  });

  it("names an enum's values in a component of its own", () => {
    const { schema, schemas } = fieldOf(ListUsersRequestSchema, "view");
    expect(schema).toEqual({ $ref: "#/components/schemas/user.v1.View" });
    expect(schemas.components()["user.v1.View"]).toMatchObject({
      type: "string",
      enum: ["VIEW_UNSPECIFIED", "VIEW_FULL", "VIEW_MASKED"],
    });
  });

  it("lists repeated messages as arrays of their component, each message once", () => {
    const { schema, schemas } = fieldOf(ListDataKeysResponseSchema, "keys");
    expect(schema).toEqual({
      type: "array",
      items: { $ref: "#/components/schemas/kms.v1.DataKey" },
    });
    schemas.ref(DataKeySchema);
    expect(Object.keys(schemas.components())).toEqual(["kms.v1.DataKey", "kms.v1.KeyStatus"]);
  });

  it.each([
    [ListUsersRequestSchema, "page_size", { minimum: 0, maximum: 100 }],
    [GetDataKeyRequestSchema, "version", { minimum: 0, exclusiveMinimum: true }],
    [CreateUserRequestSchema, "password", { minLength: 8, maxLength: 128 }],
    [CreateUserRequestSchema, "username", { pattern: "^[a-zA-Z][a-zA-Z0-9_]{2,31}$" }],
    // Ignored when empty: the empty string passes.
    [CreateUserRequestSchema, "phone", { pattern: "^$|(?:^\\+[1-9][0-9]{1,14}$)" }],
  ])("%s.%s carries its buf.validate rules", (m, name, keywords) => {
    expect(fieldOf(m, name).schema).toMatchObject(keywords);
  });

  it("drops a minimum length the empty value is exempt from", () => {
    expect(fieldOf(CreateUserRequestSchema, "name").schema).not.toHaveProperty("minLength");
    expect(
      new RegExp(fieldOf(CreateUserRequestSchema, "phone").schema.pattern as string).test(""),
    ).toBe(true);
  });

  it("lists required fields by JSON name, and leaves out the fields it is told to", () => {
    const schemas = new SchemaSet();
    expect(schemas.message(UpdateUserRequestSchema)).toMatchObject({ required: ["updateMask"] });
    const body = schemas.message(UpdateUserRequestSchema, new Set(["id"]));
    expect(Object.keys(body.properties as object)).not.toContain("id");
    expect(Object.keys(body.properties as object)).toContain("updateMask");
  });
});
