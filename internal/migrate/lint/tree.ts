// Small readers of libpg-query's parse tree (PostgreSQL's own node names).

export type Node = Record<string, unknown>;

/** The node's kind and body: { IndexStmt: {...} } → ["IndexStmt", {...}]. */
export function kindOf(node: Node): [string, Node] {
  return Object.entries(node)[0] as [string, Node];
}

/** A RangeVar's table name, schema-qualified when the statement qualifies it. */
export function relName(relation: unknown): string {
  const r = relation as Node | undefined;
  if (!r?.relname) return "";
  return qualified(r.schemaname ? [String(r.schemaname), String(r.relname)] : [String(r.relname)]);
}

/** A name as the linter keys tables: `public.` is left out, as the search path leaves it out. */
export function qualified(parts: string[]): string {
  return parts[0] === "public" && parts.length === 2 ? parts[1]! : parts.join(".");
}

export function list(value: unknown): Node[] {
  return (value as Node[] | undefined) ?? [];
}

/** String values of a list of { String: { sval } } nodes. */
export function names(value: unknown): string[] {
  return list(value).map((n) => String((n.String as Node | undefined)?.sval ?? ""));
}

/** A column's type as written, normalised: the name without pg_catalog, and its modifiers. */
export interface TypeSpec {
  name: string;
  mods: number[];
  array: boolean;
}

export function typeSpec(typeName: unknown): TypeSpec {
  const t = typeName as Node;
  const parts = names(t.names).filter((n) => n !== "pg_catalog");
  const mods = list(t.typmods).map((m) =>
    Number(((m.A_Const as Node | undefined)?.ival as Node | undefined)?.ival ?? 0),
  );
  return { name: parts.join("."), mods, array: list(t.arrayBounds).length > 0 };
}

export function constraints(columnDef: Node): Node[] {
  return list(columnDef.constraints).map((c) => c.Constraint as Node);
}

/** Every FuncCall's name anywhere under `node`. */
export function functionsCalled(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) functionsCalled(n, out);
  else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "FuncCall") out.push(names((v as Node).funcname).at(-1) ?? "");
      functionsCalled(v, out);
    }
  }
  return out;
}
