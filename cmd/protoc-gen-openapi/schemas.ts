import { ScalarType, type DescEnum, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { commentOf } from "./comments.js";
import { rulesOf } from "./validate_rules.js";

// Messages and enums as OpenAPI 3.0 schemas in proto3 JSON terms, as the server
// reads and writes them: fields by their JSON name, 64-bit integers as
// strings, bytes as base64, enums by name, the well-known types as their
// JSON forms. Each message and enum reached becomes one entry of
// components/schemas, named by its full proto name.

export type Schema = Record<string, unknown>;

const REF = "#/components/schemas/";

/** components/schemas, filled as fields reach messages and enums. */
export class SchemaSet {
  private readonly named = new Map<string, Schema>();

  /** A reference to `desc`'s schema, adding it (and what it reaches) on first use. */
  ref(desc: DescMessage | DescEnum): Schema {
    if (!this.named.has(desc.typeName)) {
      // Taken before it is built: a message may reach itself.
      this.named.set(desc.typeName, {});
      this.named.set(
        desc.typeName,
        desc.kind === "message" ? this.message(desc) : enumSchema(desc),
      );
    }
    return { $ref: `${REF}${desc.typeName}` };
  }

  /** The schema a `$ref` of this set names. */
  resolve(ref: string): Schema {
    const schema = this.named.get(ref.slice(REF.length));
    if (!ref.startsWith(REF) || !schema) throw new Error(`no schema ${ref}`);
    return schema;
  }

  /** Every schema reached so far, by name. */
  components(): Record<string, Schema> {
    return Object.fromEntries([...this.named].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  /** A message's object schema, without the fields named in `omit` (proto names). */
  message(m: DescMessage, omit: ReadonlySet<string> = new Set()): Schema {
    const properties: Record<string, Schema> = {};
    const required: string[] = [];
    for (const f of m.fields) {
      if (omit.has(f.name)) continue;
      properties[f.jsonName] = this.field(f);
      if (rulesOf(f).required) required.push(f.jsonName);
    }
    return {
      type: "object",
      ...described(commentOf(m)),
      properties,
      ...(required.length > 0 ? { required } : {}),
    };
  }

  /** A field's schema with its comment as description. */
  field(f: DescField): Schema {
    const schema = this.value(f);
    const doc = [commentOf(f), schema.description].filter((t) => t !== undefined).join("\n\n");
    if (doc === "") return schema;
    // OpenAPI 3.0 ignores whatever stands beside a $ref.
    if ("$ref" in schema) return { allOf: [schema], description: doc };
    return { ...schema, description: doc };
  }

  /** A field's value: its type and the rules it carries (no comment of the field). */
  value(f: DescField): Schema {
    switch (f.fieldKind) {
      case "scalar":
        return { ...scalarSchema(f.scalar), ...rulesOf(f).keywords };
      case "enum":
        return this.ref(f.enum);
      case "message":
        return this.messageValue(f.message);
      case "list":
        return {
          type: "array",
          items:
            f.listKind === "scalar"
              ? scalarSchema(f.scalar)
              : f.listKind === "enum"
                ? this.ref(f.enum)
                : this.messageValue(f.message),
        };
      case "map":
        return {
          type: "object",
          additionalProperties:
            f.mapKind === "scalar"
              ? scalarSchema(f.scalar)
              : f.mapKind === "enum"
                ? this.ref(f.enum)
                : this.messageValue(f.message),
        };
    }
  }

  private messageValue(m: DescMessage): Schema {
    return wellKnownSchema(m) ?? this.ref(m);
  }
}

export function scalarSchema(scalar: ScalarType): Schema {
  switch (scalar) {
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", format: "uint32", minimum: 0 };
    // proto3 JSON writes 64-bit integers as strings (JavaScript numbers
    // would lose digits) and reads either.
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BYTES:
      return { type: "string", format: "byte" };
  }
}

const WRAPPERS = new Map<string, ScalarType>([
  ["google.protobuf.DoubleValue", ScalarType.DOUBLE],
  ["google.protobuf.FloatValue", ScalarType.FLOAT],
  ["google.protobuf.Int64Value", ScalarType.INT64],
  ["google.protobuf.UInt64Value", ScalarType.UINT64],
  ["google.protobuf.Int32Value", ScalarType.INT32],
  ["google.protobuf.UInt32Value", ScalarType.UINT32],
  ["google.protobuf.BoolValue", ScalarType.BOOL],
  ["google.protobuf.StringValue", ScalarType.STRING],
  ["google.protobuf.BytesValue", ScalarType.BYTES],
]);

/** The JSON form of a well-known message, inline; undefined for any other. */
export function wellKnownSchema(m: DescMessage): Schema | undefined {
  const wrapped = WRAPPERS.get(m.typeName);
  if (wrapped !== undefined) return scalarSchema(wrapped);
  switch (m.typeName) {
    case "google.protobuf.Timestamp":
      return { type: "string", format: "date-time" };
    case "google.protobuf.Duration":
      return {
        type: "string",
        pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$",
        description: 'Seconds with an "s" suffix, e.g. "1.5s".',
      };
    case "google.protobuf.FieldMask":
      return {
        type: "string",
        description: 'Field paths in lowerCamelCase, comma-separated, e.g. "email,phone".',
      };
    case "google.protobuf.Struct":
      return { type: "object", additionalProperties: true };
    case "google.protobuf.Value":
      return {};
    case "google.protobuf.ListValue":
      return { type: "array", items: {} };
    case "google.protobuf.Empty":
      return { type: "object" };
    case "google.protobuf.Any":
      return {
        type: "object",
        properties: { "@type": { type: "string" } },
        required: ["@type"],
        additionalProperties: true,
      };
  }
  return undefined;
}

function enumSchema(e: DescEnum): Schema {
  if (e.typeName === "google.protobuf.NullValue") return { description: "Always null." };
  const values = e.values
    .map((v) => [v.name, commentOf(v)] as const)
    .filter(([, doc]) => doc !== undefined)
    .map(([name, doc]) => `- \`${name}\`: ${doc!.replace(/\n/g, " ")}`);
  const doc = [commentOf(e), values.join("\n")].filter((t) => t !== undefined && t !== "");
  return {
    type: "string",
    ...described(doc.length > 0 ? doc.join("\n\n") : undefined),
    enum: e.values.map((v) => v.name),
  };
}

function described(text: string | undefined): Schema {
  return text === undefined ? {} : { description: text };
}
