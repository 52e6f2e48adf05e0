import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { Route } from "../../internal/server/handlers.js";
import { bindingsOf } from "../../internal/server/rest/bindings.js";
import { HttpRuleSchema } from "../../third_party/google/api/http_pb.js";
import {
  matchPath,
  parsePathTemplate,
  PathTemplateError,
} from "../../internal/server/rest/path_template.js";

describe("google.api.http path templates", () => {
  it.each([
    ["/v1/users/{id}", "/v1/users/42", { id: "42" }],
    ["/v1/users/{id}", "/v1/users/a%20b", { id: "a b" }],
    ["/v1/users:lookup", "/v1/users:lookup", {}],
    ["/v1/kms/keys/{version}:revoke", "/v1/kms/keys/3:revoke", { version: "3" }],
    ["/v1/{name=shelves/*}/books", "/v1/shelves/s1/books", { name: "shelves/s1" }],
    ["/v1/{name=files/**}", "/v1/files/a/b%2Fc/d", { name: "files/a/b%2Fc/d" }],
    ["/v1/{parent.id}/x", "/v1/7/x", { "parent.id": "7" }],
  ])("%s matches %s", (template, path, vars) => {
    expect(matchPath(parsePathTemplate(template), path)).toEqual(vars);
  });

  it.each([
    ["/v1/users/{id}", "/v1/users"],
    ["/v1/users/{id}", "/v1/users/"],
    ["/v1/users/{id}", "/v1/users/1/2"],
    ["/v1/users", "/v1/users:lookup"],
    ["/v1/users:lookup", "/v1/users"],
    ["/v1/users/{id}", "/v1/users/%zz"],
    ["/v1/users/{id}", "v1/users/1"],
  ])("%s does not match %s", (template, path) => {
    expect(matchPath(parsePathTemplate(template), path)).toBeUndefined();
  });

  it.each([
    "v1/users",
    "/v1/{id",
    "/v1/{id=a=b}",
    "/v1/{1d}",
    "/v1/**/x",
    "/v1/{id}/{id}",
    "/v1/us ers",
    "/v1/users:",
  ])("%s is refused, naming the template", (template) => {
    expect(() => parsePathTemplate(template)).toThrow(PathTemplateError);
    expect(() => parsePathTemplate(template)).toThrow(template);
  });
});

describe("google.api.http rules", () => {
  const route = (name: string) =>
    ({
      method: {
        name,
        parent: { typeName: "t.v1.S" },
        input: {
          typeName: "t.v1.R",
          fields: [{ name: "id", jsonName: "id", fieldKind: "scalar" }],
        },
        output: { typeName: "t.v1.R", fields: [] },
      },
    }) as unknown as Route;
  const get = (path: string) => create(HttpRuleSchema, { pattern: { case: "get", value: path } });

  it("two routes matching the same requests are refused at start-up, whatever their variables are called", () => {
    expect(() =>
      bindingsOf([
        { route: route("A"), rule: get("/v1/x/{id}") },
        { route: route("B"), rule: get("/v1/x/{id=*}") },
      ]),
    ).toThrow(/B: GET \/v1\/x\/\{id=\*\} matches what t\.v1\.S\.A's \/v1\/x\/\{id\} does/);
    expect(
      bindingsOf([
        { route: route("A"), rule: get("/v1/x/{id}") },
        { route: route("B"), rule: get("/v1/x/{id}:verb") },
      ]),
    ).toHaveLength(2);
  });

  it("a variable naming no field is refused, naming the method", () => {
    expect(() => bindingsOf([{ route: route("A"), rule: get("/v1/x/{nope}") }])).toThrow(
      /t\.v1\.S\.A: path variable \{nope\} names no singular scalar field of t\.v1\.R/,
    );
  });
});
