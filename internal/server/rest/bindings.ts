import { getOption, hasOption, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { http } from "../../../third_party/google/api/annotations_pb.js";
import type { HttpRule } from "../../../third_party/google/api/http_pb.js";
import type { Route } from "../handlers.js";
import { parsePathTemplate, type PathTemplate } from "./path_template.js";

// The REST routes, read from the methods' google.api.http options: nothing
// here names an RPC. A rule that cannot be served as written (a variable
// naming no field, a body field that does not exist, two rules on one route)
// stops the server at start-up, naming the method.

/** One HTTP route of a method. */
export interface RestBinding {
  route: Route;
  /** GET, POST, PUT, PATCH, DELETE, or a custom method. */
  httpMethod: string;
  template: PathTemplate;
  /** "*": the whole request; a field name: that field; "": no body. */
  body: string;
  /** The response field sent as the body; "" for the whole response. */
  responseBody: string;
}

export class RestBindingError extends Error {
  override name = "RestBindingError";
}

/** Every route of every annotated method, in declaration order. */
export function restBindings(routes: readonly Route[]): RestBinding[] {
  return bindingsOf(
    routes.flatMap((route) =>
      hasOption(route.method, http) ? [{ route, rule: getOption(route.method, http) }] : [],
    ),
  );
}

/** The routes of each method's rule and its additional bindings; two that match the same requests are refused. */
export function bindingsOf(rules: readonly { route: Route; rule: HttpRule }[]): RestBinding[] {
  const bindings = rules.flatMap(({ route, rule }) =>
    [rule, ...rule.additionalBindings].map((r, i) => {
      if (i > 0 && r.additionalBindings.length > 0)
        throw bindingError(route, "an additional binding may not have bindings of its own");
      return binding(route, r);
    }),
  );
  const seen = new Map<string, RestBinding>();
  for (const b of bindings) {
    // What a route matches, not its variables' names: /x/{a} and /x/{b} are one.
    const key = `${b.httpMethod} ${b.template.text.replace(/\{[^}=]*(?:=([^}]*))?\}/g, (_, p?: string) => p ?? "*")}`;
    const other = seen.get(key);
    if (other)
      throw bindingError(
        b.route,
        `${b.httpMethod} ${b.template.text} matches what ${other.route.method.parent.typeName}.${other.route.method.name}'s ${other.template.text} does`,
      );
    seen.set(key, b);
  }
  return bindings;
}

function binding(route: Route, rule: HttpRule): RestBinding {
  const p = rule.pattern;
  if (p.case === undefined) throw bindingError(route, "the rule names no HTTP method and path");
  const [httpMethod, path] =
    p.case === "custom"
      ? [p.value.kind.toUpperCase(), p.value.path]
      : [p.case.toUpperCase(), p.value];
  let template: PathTemplate;
  try {
    template = parsePathTemplate(path);
  } catch (err) {
    throw bindingError(route, (err as Error).message);
  }
  const input = route.method.input;
  for (const v of template.variables) {
    const f = fieldAt(input, v.fieldPath);
    if (!f || f.fieldKind === "message" || f.fieldKind === "list" || f.fieldKind === "map")
      throw bindingError(
        route,
        `path variable {${v.fieldPath.join(".")}} names no singular scalar field of ${input.typeName}`,
      );
  }
  const body = rule.body;
  if (body !== "" && body !== "*") {
    if (!input.fields.some((f) => f.name === body))
      throw bindingError(route, `body "${body}" is not a field of ${input.typeName}`);
    if (template.variables.some((v) => v.fieldPath[0] === body))
      throw bindingError(route, `body "${body}" is also bound by the path`);
  }
  if (
    rule.responseBody !== "" &&
    !route.method.output.fields.some((f) => f.name === rule.responseBody)
  )
    throw bindingError(
      route,
      `response_body "${rule.responseBody}" is not a field of ${route.method.output.typeName}`,
    );
  return { route, httpMethod, template, body, responseBody: rule.responseBody };
}

/** The field a dotted path names, through singular message fields. */
export function fieldAt(message: DescMessage, path: readonly string[]): DescField | undefined {
  let m: DescMessage | undefined = message;
  let field: DescField | undefined;
  for (const name of path) {
    field = m?.fields.find((f) => f.name === name || f.jsonName === name);
    if (!field) return undefined;
    m = field.fieldKind === "message" ? field.message : undefined;
  }
  return field;
}

function bindingError(route: Route, why: string): RestBindingError {
  return new RestBindingError(
    `google.api.http of ${route.method.parent.typeName}.${route.method.name}: ${why}`,
  );
}
