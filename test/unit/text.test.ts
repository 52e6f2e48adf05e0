import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, StructSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  AuditEventSchema,
  DataKeySchema,
  EncryptFieldRequestSchema,
  HashFieldRequestSchema,
  ListAuditEventsResponseSchema,
} from "../../api/kms/v1/kms_pb.js";
import {
  GetUserRequestSchema,
  LookupUserRequestSchema,
  UpdateUserRequestSchema,
} from "../../api/user/v1/user_pb.js";
import { nulField } from "../../internal/server/middleware/text.js";

const at = <D extends DescMessage>(desc: D, init: MessageInitShape<D>) =>
  nulField(desc, create(desc, init));

describe("nulField", () => {
  it.each([
    [
      "a string field",
      () => at(HashFieldRequestSchema, { fieldName: "users.email\0" }),
      "field_name",
    ],
    ["the second string field", () => at(HashFieldRequestSchema, { value: "a\0b" }), "value"],
    [
      "a oneof member",
      () => at(LookupUserRequestSchema, { key: { case: "username", value: "ann\0" } }),
      "username",
    ],
    [
      "a list in a nested message",
      () => at(UpdateUserRequestSchema, { id: 1n, updateMask: { paths: ["name", "x\0"] } }),
      "update_mask.paths[1]",
    ],
    ["a map's key", () => at(AuditEventSchema, { details: { "k\0": "v" } }), "details"],
    ["a map's value", () => at(AuditEventSchema, { details: { k: "v\0" } }), "details"],
    [
      "a list of messages",
      () => at(ListAuditEventsResponseSchema, { events: [{ actor: "a" }, { actor: "b\0" }] }),
      "events[1].actor",
    ],
    [
      "a Struct field (held as JSON)",
      () => at(DataKeySchema, { metadata: { a: "x\0" } }),
      "metadata.fields[a].string_value",
    ],
    [
      "a list inside a Struct",
      () => at(DataKeySchema, { metadata: { list: ["ok", "x\0"] } }),
      "metadata.fields[list].list_value.values[1].string_value",
    ],
    [
      "a Struct message's map of messages",
      () =>
        at(StructSchema, {
          fields: { b: { kind: { case: "stringValue", value: "\0" } } },
        }),
      "fields[b].string_value",
    ],
    [
      "a proto2 message",
      () => at(FileDescriptorProtoSchema, { name: "a.proto", package: "p\0" }),
      "package",
    ],
  ])("When NUL is in %s, Then its path is named", (_what, found, path) => {
    expect(found()).toBe(path);
  });

  it("When two fields hold NUL, Then the first declared is named", () => {
    expect(at(HashFieldRequestSchema, { fieldName: "\0", value: "\0" })).toBe("field_name");
  });

  it.each([
    ["clean strings", () => at(HashFieldRequestSchema, { fieldName: "users.email", value: "x" })],
    ["no string field at all", () => at(GetUserRequestSchema, { id: 7n })],
    ["an unset oneof", () => at(LookupUserRequestSchema, {})],
    ["a Struct without NUL", () => at(DataKeySchema, { metadata: { a: ["b", { c: "d" }] } })],
    [
      "NUL in bytes (bytes may hold anything)",
      () => at(EncryptFieldRequestSchema, { fieldName: "a", plaintext: new Uint8Array([0, 0]) }),
    ],
  ])("When a message has %s, Then nothing is named", (_what, found) => {
    expect(found()).toBeUndefined();
  });
});
