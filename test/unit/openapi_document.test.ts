import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescMethodUnary } from "@bufbuild/protobuf";
import { validate } from "@readme/openapi-parser";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import type { Route } from "../../internal/server/handlers.js";
import { openApiFile, readOpenApi } from "../../internal/server/openapi.js";
import { fieldAt, restBindings } from "../../internal/server/rest/bindings.js";
import { requestMessage } from "../../internal/server/rest/request.js";

// openapi.yaml (committed, regenerated and compared by CI) against the
// OpenAPI 3 schema, and against the routes the server builds from the same
// annotations: the same (method, path) pairs, parameters the server takes.

type Schema = Record<string, unknown>;
interface Operation {
  operationId: string;
  tags: string[];
  parameters?: { name: string; in: string; required?: boolean; schema: Schema }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, { content?: Record<string, { schema: Schema }> }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

const text = readFileSync("openapi.yaml", "utf8");
const load = () => parse(text) as Document;
const doc = load();

const bindings = restBindings(
  [UserService, KmsService].flatMap((service) =>
    service.methods.map(
      (method) => ({ service, method: method as DescMethodUnary, handler: undefined }) as never,
    ),
  ) as Route[],
);

describe("openapi.yaml", () => {
  it("is a valid OpenAPI 3 document", async () => {
    // validate() dereferences what it is given: a copy of its own.
    const result = await validate(load() as never);
    expect(result.valid ? [] : result.errors.map((e) => e.message)).toEqual([]);
    expect(doc.openapi).toMatch(/^3\.0\.\d+$/);
  });

  it("fails validation where the document is wrong (the check has teeth)", async () => {
    const broken = load();
    delete broken.paths["/v1/users/{id}"]!.get!.parameters;
    expect((await validate(broken as never)).valid).toBe(false);
  });

  it("has exactly the server's REST routes", () => {
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const served = bindings.map((b) => `${b.httpMethod} ${b.template.text}`);
    expect(documented.sort()).toEqual(served.sort());
  });

  describe.each(bindings.map((b) => [`${b.httpMethod} ${b.template.text}`, b] as const))(
    "%s",
    (_, b) => {
      const op = doc.paths[b.template.text]?.[b.httpMethod.toLowerCase()];
      if (!op) {
        it("is documented", () => expect(op).toBeDefined());
        return;
      }
      const input = b.route.method.input;
      const params = op.parameters ?? [];

      it("is its method's operation, under its service's tag", () => {
        expect(op.operationId).toMatch(
          new RegExp(`^${b.route.service.name}_${b.route.method.name}(_\\d+)?$`),
        );
        expect(op.tags).toEqual([b.route.service.typeName]);
        expect(op.responses["200"]!.content!["application/json"]!.schema).toEqual({
          $ref: `#/components/schemas/${b.route.method.output.typeName}`,
        });
        expect(op.responses.default).toEqual({ $ref: "#/components/responses/Error" });
      });

      it("names the path's variables as path parameters, the rest only where no body holds them", () => {
        expect(params.filter((p) => p.in === "path").map((p) => p.name)).toEqual(
          b.template.variables.map((v) => v.fieldPath.join(".")),
        );
        const query = params.filter((p) => p.in === "query");
        if (b.body === "*") expect(query).toEqual([]);
        for (const p of query) expect(fieldAt(input, p.name.split(".")), p.name).toBeDefined();
        expect(op.requestBody !== undefined).toBe(b.body !== "");
      });

      it("takes every parameter it names, as the server reads it", () => {
        const vars = Object.fromEntries(
          params.filter((p) => p.in === "path").map((p) => [p.name, sample(p.schema, doc)]),
        );
        const query = new URLSearchParams(
          params
            .filter((p) => p.in === "query")
            .map((p): [string, string] => [p.name, sample(p.schema, doc)]),
        );
        expect(() => requestMessage(b, vars, query, undefined)).not.toThrow();
      });
    },
  );
});

/** A value of `schema` as a URL would carry it. */
function sample(schema: Schema, doc: Document): string {
  const ref = schema.$ref;
  const s = typeof ref === "string" ? doc.components.schemas[ref.replace(/^.*\//, "")]! : schema;
  if (Array.isArray(s.enum)) return String(s.enum.at(-1));
  if (s.type === "array") return sample(s.items as Schema, doc);
  if (s.type === "integer" || s.type === "number") return "3";
  if (s.type === "boolean") return "true";
  if (s.format === "int64" || s.format === "uint64") return "3";
  if (s.format === "date-time") return "2024-01-02T03:04:05Z";
  if (s.format === "byte") return "AQI=";
  return "x";
}

describe("the served document", () => {
  const dir = mkdtempSync(join(tmpdir(), "openapi-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is openapi.yaml at the project's root", () => {
    expect(openApiFile()).toBe(join(process.cwd(), "openapi.yaml"));
    expect(readOpenApi()).toBe(text);
  });

  it("when missing, stops start-up with an error naming the file and how it is made", () => {
    const missing = join(dir, "openapi.yaml");
    expect(() => readOpenApi(missing)).toThrow(
      `cannot read ${missing}, served at GET /openapi.yaml`,
    );
    expect(() => readOpenApi(missing)).toThrow("npm run generate");
  });
});
