import {
  fromJson,
  ScalarType,
  toJson,
  type DescField,
  type DescMessage,
  type JsonObject,
  type JsonValue,
  type Message,
} from "@bufbuild/protobuf";
import { fieldAt, type RestBinding } from "./bindings.js";

// A REST call into its request message, and the response back, in proto3
// JSON: the path's variables, the query's parameters and the body, each
// where the method's google.api.http rule puts it. What cannot be taken is
// named (the variable, the parameter, or the body), never quoted: a value
// may be personal data.

/** A part of the HTTP request that does not make a valid request message. */
export class TranscodeError extends Error {
  override name = "TranscodeError";
  constructor(
    /** The path variable, query parameter or "body" at fault. */
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The request message of a call to `b`: `vars` from the path (decoded),
 * `query` and the parsed JSON `body` (undefined when there was none).
 */
export function requestMessage(
  b: RestBinding,
  vars: Readonly<Record<string, string>>,
  query: URLSearchParams,
  body: JsonValue | undefined,
): Message {
  const input = b.route.method.input;
  let json: JsonObject = {};
  if (b.body === "*") {
    if (body !== undefined) {
      if (body === null || typeof body !== "object" || Array.isArray(body))
        throw new TranscodeError("body", "the body must be a JSON object");
      json = { ...body };
    }
    for (const key of query.keys())
      throw new TranscodeError(
        key,
        `query parameter ${key}: this route takes its fields in the body`,
      );
  } else {
    if (body !== undefined) {
      if (b.body === "") throw new TranscodeError("body", "this route takes no body");
      json[b.body] = body;
    }
    for (const key of new Set(query.keys())) {
      const path = key.split(".");
      const field = fieldAt(input, path);
      const where = `query parameter ${key}`;
      if (!field || !queryable(field)) throw new TranscodeError(key, `${where}: no such field`);
      if (path[0] === b.body || b.template.variables.some((v) => v.fieldPath.join(".") === key))
        throw new TranscodeError(
          key,
          `${where}: set by the ${path[0] === b.body ? "body" : "path"}`,
        );
      const texts = query.getAll(key);
      if (field.fieldKind !== "list" && texts.length > 1)
        throw new TranscodeError(key, `${where}: given more than once`);
      const value =
        field.fieldKind === "list" ? texts.map((t) => jsonOf(field, t)) : jsonOf(field, texts[0]!);
      set(json, path, checked(input, path, value, field, where));
    }
  }
  for (const v of b.template.variables) {
    const name = v.fieldPath.join(".");
    const field = fieldAt(input, v.fieldPath)!;
    const where = `path variable ${name}`;
    const value = checked(input, v.fieldPath, jsonOf(field, vars[name]!), field, where);
    const inBody = get(json, v.fieldPath, field);
    if (inBody !== undefined && String(inBody) !== String(value))
      throw new TranscodeError(name, `${where}: the body gives ${name} another value`);
    set(json, v.fieldPath, value);
  }
  try {
    return fromJson(input, json);
  } catch {
    throw new TranscodeError("body", `the body is not a valid ${input.typeName}`);
  }
}

/** The response as the route's body: the whole message, or its response_body field. */
export function responseJson(b: RestBinding, response: Message): JsonValue {
  const json = toJson(b.route.method.output, response);
  if (b.responseBody === "") return json;
  const field = b.route.method.output.fields.find((f) => f.name === b.responseBody)!;
  return (json as JsonObject)[field.jsonName] ?? null;
}

// Scalars, enums, and the well-known messages whose JSON is a string or a
// number (a Timestamp, a Duration, a FieldMask, a wrapper), one or repeated.
function queryable(field: DescField): boolean {
  if (field.fieldKind === "scalar" || field.fieldKind === "enum") return true;
  if (field.fieldKind === "list") return field.listKind !== "message";
  return field.fieldKind === "message" && STRING_MESSAGES.has(field.message.typeName);
}

const STRING_MESSAGES = new Set(
  [
    "Timestamp",
    "Duration",
    "FieldMask",
    "DoubleValue",
    "FloatValue",
    "Int64Value",
    "UInt64Value",
    "Int32Value",
    "UInt32Value",
    "BoolValue",
    "StringValue",
    "BytesValue",
  ].map((n) => `google.protobuf.${n}`),
);

/** The JSON value a text stands for in `field`: proto3 JSON takes numbers as strings. */
function jsonOf(field: DescField, text: string): JsonValue {
  const isEnum =
    field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum");
  if (isEnum) return /^-?[0-9]+$/.test(text) ? Number(text) : text;
  const isBool =
    (field.fieldKind === "scalar" && field.scalar === ScalarType.BOOL) ||
    (field.fieldKind === "list" &&
      field.listKind === "scalar" &&
      field.scalar === ScalarType.BOOL) ||
    (field.fieldKind === "message" && field.message.typeName === "google.protobuf.BoolValue");
  if (isBool) return text === "true" ? true : text === "false" ? false : text;
  return text;
}

/** `value` at `path`, if the message takes it there; else an error naming `where`. */
function checked(
  input: DescMessage,
  path: readonly string[],
  value: JsonValue,
  field: DescField,
  where: string,
): JsonValue {
  const probe: JsonObject = {};
  set(probe, path, value);
  try {
    fromJson(input, probe);
  } catch {
    throw new TranscodeError(path.join("."), `${where}: not a valid ${kindOf(field)}`);
  }
  return value;
}

function kindOf(field: DescField): string {
  switch (field.fieldKind) {
    case "scalar":
      return ScalarType[field.scalar].toLowerCase();
    case "enum":
      return `${field.enum.typeName} (one of ${field.enum.values.map((v) => v.name).join(", ")})`;
    case "message":
      return field.message.typeName;
    case "list":
      return `list of ${field.listKind === "scalar" ? ScalarType[field.scalar].toLowerCase() : field.listKind === "enum" ? field.enum.typeName : field.message.typeName}`;
    case "map":
      return "map";
  }
}

// The JSON object's members by proto name (fromJson takes either name).
function set(json: JsonObject, path: readonly string[], value: JsonValue): void {
  let o = json;
  for (const name of path.slice(0, -1)) {
    const next = o[name];
    o = o[name] = next && typeof next === "object" && !Array.isArray(next) ? { ...next } : {};
  }
  o[path.at(-1)!] = value;
}

// What the body already holds at `path`, under the proto or the JSON name.
function get(json: JsonObject, path: readonly string[], field: DescField): JsonValue | undefined {
  let o: JsonValue | undefined = json;
  for (const [i, name] of path.entries()) {
    if (!o || typeof o !== "object" || Array.isArray(o)) return undefined;
    const last = i === path.length - 1;
    o = o[name] ?? (last ? o[field.jsonName] : undefined);
  }
  return o;
}
