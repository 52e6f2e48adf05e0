import { describe, expect, it } from "vitest";
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
