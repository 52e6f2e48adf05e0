import { execFileSync } from "node:child_process";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type DescriptorProto } from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { describe, expect, it } from "vitest";

// third_party/buf/validate/validate.proto is our own subset of protovalidate's
// schema; the options it produces are read by the @bufbuild/protovalidate
// runtime, so every declared number and type must match that package's.
const image = execFileSync("npx", [
  "buf",
  "build",
  "--path",
  "third_party/buf/validate",
  "-o",
  "-#format=binpb",
]);
const ours = fromBinary(FileDescriptorSetSchema, image).file.find(
  (f) => f.name === "buf/validate/validate.proto",
)!;
const upstream = file_buf_validate_validate.proto;

describe("the buf.validate subset", () => {
  it("declares the same extensions", () => {
    const shape = (e: { name: string; number: number; extendee: string; typeName: string }) =>
      `${e.extendee}:${e.name}=${e.number}:${e.typeName}`;
    for (const ext of ours.extension) {
      expect(upstream.extension.map(shape)).toContain(shape(ext));
    }
  });

  it.each(ours.messageType.map((m) => m.name))(
    "message %s keeps upstream numbers and types",
    (name) => {
      const mine = ours.messageType.find((m) => m.name === name)!;
      const theirs = upstream.messageType.find((m) => m.name === name);
      expect(theirs, name).toBeDefined();
      for (const field of mine.field) {
        const match = (theirs as DescriptorProto).field.find((f) => f.name === field.name);
        expect(match, `${name}.${field.name}`).toBeDefined();
        expect({
          number: match!.number,
          type: match!.type,
          label: match!.label,
          typeName: match!.typeName,
        }).toEqual({
          number: field.number,
          type: field.type,
          label: field.label,
          typeName: field.typeName,
        });
      }
    },
  );
});
