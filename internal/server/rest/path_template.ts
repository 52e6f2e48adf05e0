// google.api.http path templates (`/v1/users/{id}`, `/v1/{name=shelves/*}`,
// `/v1/users:lookup`): parsed once at start-up, matched per request.
//
//   Template = "/" Segments [ ":" Verb ]
//   Segment  = "*" | "**" | LITERAL | "{" FieldPath [ "=" Segments ] "}"

type Segment = { literal: string } | { wildcard: "*" | "**" };

/** A variable: the request field it sets and the segments it spans. */
export interface PathVariable {
  fieldPath: string[];
  start: number;
  /** Exclusive; a trailing `**` runs to the end of the path. */
  end: number;
}

export interface PathTemplate {
  text: string;
  segments: Segment[];
  variables: PathVariable[];
  verb: string | undefined;
}

export class PathTemplateError extends Error {
  override name = "PathTemplateError";
}

const LITERAL = /^[A-Za-z0-9._~-]+$/;
const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

export function parsePathTemplate(text: string): PathTemplate {
  const fail = (why: string) => new PathTemplateError(`path template ${text}: ${why}`);
  if (!text.startsWith("/")) throw fail("must start with /");
  const segments: Segment[] = [];
  const variables: PathVariable[] = [];
  const segment = (s: string): Segment => {
    if (s === "*" || s === "**") return { wildcard: s };
    if (!LITERAL.test(s)) throw fail(`segment "${s}" is not a literal, * or **`);
    return { literal: s };
  };
  let verb: string | undefined;
  let i = 1;
  for (;;) {
    if (text[i] === "{") {
      const close = text.indexOf("}", i);
      if (close < 0) throw fail("a { is not closed");
      const [field = "", pattern = "*", extra] = text.slice(i + 1, close).split("=");
      if (extra !== undefined || !FIELD_PATH.test(field)) throw fail(`bad variable {${field}}`);
      const start = segments.length;
      segments.push(...pattern.split("/").map(segment));
      variables.push({ fieldPath: field.split("."), start, end: segments.length });
      i = close + 1;
    } else {
      const m = /^[^/:{}]+/.exec(text.slice(i));
      if (!m) throw fail(`expected a segment at offset ${i}`);
      segments.push(segment(m[0]));
      i += m[0].length;
    }
    if (i === text.length) break;
    if (text[i] === "/") {
      i++;
      continue;
    }
    if (text[i] === ":") {
      verb = text.slice(i + 1);
      if (!LITERAL.test(verb)) throw fail(`bad verb "${verb}"`);
      break;
    }
    throw fail(`unexpected "${text[i]}" at offset ${i}`);
  }
  const deep = segments.findIndex((s) => "wildcard" in s && s.wildcard === "**");
  if (deep >= 0 && deep !== segments.length - 1) throw fail("** must be the last segment");
  const names = variables.map((v) => v.fieldPath.join("."));
  if (new Set(names).size !== names.length) throw fail("a field is bound twice");
  return { text, segments, variables, verb };
}

/**
 * The variables of `path` (its percent-encoded pathname) as `field.path` →
 * decoded text, or undefined when it does not match. A multi-segment value
 * keeps its slashes; an escaped slash inside one segment stays escaped.
 */
export function matchPath(t: PathTemplate, path: string): Record<string, string> | undefined {
  if (!path.startsWith("/")) return undefined;
  let rest = path.slice(1);
  if (t.verb !== undefined) {
    if (!rest.endsWith(`:${t.verb}`)) return undefined;
    rest = rest.slice(0, -(t.verb.length + 1));
  }
  const parts = rest.split("/");
  let decoded: string[];
  try {
    decoded = parts.map((p) => decodeURIComponent(p));
  } catch {
    return undefined;
  }
  const last = t.segments.at(-1);
  const deep = last !== undefined && "wildcard" in last && last.wildcard === "**";
  if (deep ? parts.length < t.segments.length - 1 : parts.length !== t.segments.length)
    return undefined;
  for (const [k, seg] of t.segments.entries()) {
    if ("literal" in seg) {
      if (decoded[k] !== seg.literal) return undefined;
    } else if (seg.wildcard === "*" && parts[k] === "") return undefined;
  }
  const values: Record<string, string> = {};
  for (const v of t.variables) {
    const end = deep && v.end === t.segments.length ? parts.length : v.end;
    values[v.fieldPath.join(".")] =
      end - v.start === 1
        ? decoded[v.start]!
        : parts
            .slice(v.start, end)
            .map((p) => decodeURIComponent(p.replace(/%2F/gi, "%252F")))
            .join("/");
  }
  return values;
}
