import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { fieldAt, type RestBinding } from "../../internal/server/rest/bindings.js";
import type { PathTemplate } from "../../internal/server/rest/path_template.js";
import { commentOf, firstSentence } from "./comments.js";
import { rulesOf } from "./validate_rules.js";
import type { Schema, SchemaSet } from "./schemas.js";

// One google.api.http route as an OpenAPI operation: its path, parameters,
// body and answers, taking each field from where the server takes it
// (internal/server/rest/request.ts).

export class OperationError extends Error {
  override name = "OperationError";
}

const METHODS = new Set(["get", "put", "post", "delete", "options", "head", "patch", "trace"]);

const ERROR_RESPONSE = "#/components/responses/Error";

export interface Operation {
  path: string;
  method: string;
  operation: Schema;
}

/** `b` as an operation; `operationId` tells it from the method's other routes. */
export function operationOf(b: RestBinding, operationId: string, schemas: SchemaSet): Operation {
  const { service, method: rpc } = b.route;
  const where = `google.api.http of ${service.typeName}.${rpc.name}`;
  const method = b.httpMethod.toLowerCase();
  if (!METHODS.has(method))
    throw new OperationError(`${where}: OpenAPI has no HTTP method ${b.httpMethod}`);
  const input = rpc.input;
  const pathBound = new Set(b.template.variables.map((v) => v.fieldPath.join(".")));
  const doc = commentOf(rpc);
  const summary = doc === undefined ? rpc.name : firstSentence(doc);
  const parameters = [
    ...b.template.variables.map((v) => ({
      name: v.fieldPath.join("."),
      in: "path",
      required: true,
      ...parameterOf(fieldAt(input, v.fieldPath)!, schemas),
    })),
    ...(b.body === "*"
      ? []
      : queryParameters(input, [], pathBound, b.body, schemas, new Set([input.typeName]))),
  ];
  const operation: Schema = {
    tags: [service.typeName],
    operationId,
    summary,
    ...(doc === undefined || doc === summary ? {} : { description: doc }),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...requestBody(b, schemas),
    responses: {
      "200": {
        description: commentOf(rpc.output) ?? rpc.output.name,
        content: { "application/json": { schema: responseSchema(b, schemas) } },
      },
      default: { $ref: ERROR_RESPONSE },
    },
  };
  return { path: openApiPath(b.template, where), method, operation };
}

/**
 * The template as an OpenAPI path: each variable as `{field.path}` (what it
 * matches, e.g. `{name=shelves/*}`, is not said), the `:verb` kept. A
 * wildcard outside a variable has no OpenAPI form.
 */
export function openApiPath(t: PathTemplate, where = t.text): string {
  const parts: string[] = [];
  for (let k = 0; k < t.segments.length;) {
    const v = t.variables.find((x) => x.start === k);
    if (v) {
      parts.push(`{${v.fieldPath.join(".")}}`);
      k = Math.max(v.end, k + 1);
      continue;
    }
    const seg = t.segments[k]!;
    if (!("literal" in seg))
      throw new OperationError(`${where}: ${t.text} has a ${seg.wildcard} outside a variable`);
    parts.push(seg.literal);
    k++;
  }
  return `/${parts.join("/")}${t.verb === undefined ? "" : `:${t.verb}`}`;
}

function parameterOf(f: DescField, schemas: SchemaSet): Schema {
  const doc = schemas.field(f).description;
  const required = rulesOf(f).required;
  return {
    ...(doc === undefined ? {} : { description: doc }),
    ...(required ? { required } : {}),
    schema: schemas.value(f),
  };
}

/**
 * The request fields a body-less (or one-field body) route takes from the
 * query string, by proto name: those whose JSON is a string, number or
 * boolean, one or repeated, found through singular message fields
 * (`a.b`); not those set by the path or the body.
 */
function queryParameters(
  m: DescMessage,
  prefix: readonly string[],
  pathBound: ReadonlySet<string>,
  body: string,
  schemas: SchemaSet,
  /** Messages on the way here: a message that holds itself is not followed again. */
  visiting: ReadonlySet<string>,
): Schema[] {
  return m.fields.flatMap((f): Schema[] => {
    const path = [...prefix, f.name];
    const name = path.join(".");
    if (pathBound.has(name) || (prefix.length === 0 && f.name === body)) return [];
    const value = schemas.value(f);
    if (isPlain(value, schemas)) return [{ name, in: "query", ...parameterOf(f, schemas) }];
    if (f.fieldKind === "message" && "$ref" in value && !visiting.has(f.message.typeName))
      return queryParameters(
        f.message,
        path,
        pathBound,
        body,
        schemas,
        new Set([...visiting, f.message.typeName]),
      );
    return [];
  });
}

// A string, number or boolean (an enum's name among them), or an array of them.
function isPlain(schema: Schema, schemas: SchemaSet): boolean {
  const s = typeof schema.$ref === "string" ? schemas.resolve(schema.$ref) : schema;
  if (s.type === "array") return isPlain(s.items as Schema, schemas);
  return typeof s.type === "string" && PLAIN.has(s.type);
}

const PLAIN = new Set(["string", "integer", "number", "boolean"]);

function requestBody(b: RestBinding, schemas: SchemaSet): Schema {
  if (b.body === "") return {};
  const input = b.route.method.input;
  let schema: Schema;
  if (b.body === "*") {
    // The path's fields are not asked for again (the body may repeat one, if it agrees).
    const bound = new Set(
      b.template.variables.filter((v) => v.fieldPath.length === 1).map((v) => v.fieldPath[0]!),
    );
    schema = bound.size === 0 ? schemas.ref(input) : schemas.message(input, bound);
  } else {
    schema = schemas.field(input.fields.find((f) => f.name === b.body)!);
  }
  return { requestBody: { content: { "application/json": { schema } } } };
}

function responseSchema(b: RestBinding, schemas: SchemaSet): Schema {
  const output = b.route.method.output;
  if (b.responseBody === "") return schemas.ref(output);
  return schemas.field(output.fields.find((f) => f.name === b.responseBody)!);
}
