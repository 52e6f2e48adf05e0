import type { DescMethodUnary, DescService } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Route } from "../../internal/server/handlers.js";
import { restBindings } from "../../internal/server/rest/bindings.js";
import { commentOf } from "./comments.js";
import { operationOf } from "./operations.js";
import { SchemaSet, type Schema } from "./schemas.js";

export interface Info {
  title: string;
  version: string;
  description?: string;
}

/**
 * The OpenAPI 3.0 document of the services' google.api.http routes, read
 * with the server's own reading of the annotations (restBindings), so the
 * document lists exactly the routes port 8000 serves.
 */
export function openApiDocument(services: readonly DescService[], info: Info): Schema {
  const routes: Route[] = services.flatMap((service) =>
    service.methods
      .filter((m): m is DescMethodUnary => m.methodKind === "unary")
      .map((method) => ({ service, method, handler: notServed })),
  );
  const bindings = restBindings(routes);
  const schemas = new SchemaSet();
  const paths: Record<string, Record<string, Schema>> = {};
  const seen = new Map<string, number>();
  for (const b of bindings) {
    const base = `${b.route.service.name}_${b.route.method.name}`;
    // A method's additional bindings: ListUsers, ListUsers_2…
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    const { path, method, operation } = operationOf(b, n === 1 ? base : `${base}_${n}`, schemas);
    (paths[path] ??= {})[method] = operation;
  }
  const served = services.filter((s) => bindings.some((b) => b.route.service === s));
  return {
    openapi: "3.0.3",
    info,
    tags: served.map((s) => {
      const doc = commentOf(s);
      return { name: s.typeName, ...(doc === undefined ? {} : { description: doc }) };
    }),
    // Authentication may be off; when on, every route takes a bearer token.
    security: [{ bearer: [] }],
    paths,
    components: {
      schemas: { ...schemas.components(), ConnectError: CONNECT_ERROR },
      responses: {
        Error: {
          description:
            "Connect's error JSON, with the HTTP status Connect gives its code (400, 401, 403, 404, 409, 429, 503…). Details carry a google.rpc.ErrorInfo whose reason is the package's ErrorReason.",
          content: {
            "application/json": { schema: { $ref: "#/components/schemas/ConnectError" } },
          },
        },
      },
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "A token from auth.tokens, or a JWT when auth.jwt is set.",
        },
      },
    },
  };
}

const notServed: Route["handler"] = () => {
  throw new Error("the OpenAPI generator serves no call");
};

const CONNECT_ERROR: Schema = {
  type: "object",
  description: "An error as Connect's protocol writes it.",
  properties: {
    code: {
      type: "string",
      enum: Object.values(Code)
        .filter((c): c is Code => typeof c === "number")
        .map((c) => codeToString(c)),
    },
    message: { type: "string" },
    details: {
      type: "array",
      items: {
        type: "object",
        properties: {
          type: {
            type: "string",
            description: 'The detail\'s full type name, e.g. "google.rpc.ErrorInfo".',
          },
          value: {
            type: "string",
            description: "The detail in protobuf binary, base64 without padding.",
          },
          debug: { type: "object", description: "The detail as JSON, for reading." },
        },
        required: ["type", "value"],
      },
    },
  },
  required: ["code"],
};
