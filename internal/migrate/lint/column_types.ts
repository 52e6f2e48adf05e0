import type { TypeSpec } from "./tree.js";

// Type changes PostgreSQL makes in the catalog alone (no rewrite, no scan):
// the same type, a longer or removed varchar limit, varchar ↔ text, and a
// numeric with more digits before the point and the same scale.

const ALIASES: Record<string, string> = {
  "character varying": "varchar",
  int: "int4",
  integer: "int4",
  bigint: "int8",
  smallint: "int2",
  decimal: "numeric",
  "timestamp without time zone": "timestamp",
  "timestamp with time zone": "timestamptz",
  character: "bpchar",
  char: "bpchar",
};

const canonical = (t: TypeSpec) => ({ ...t, name: ALIASES[t.name] ?? t.name });

/** Whether ALTER COLUMN … TYPE from `from` to `to` (without USING) changes only metadata. */
export function metadataOnly(from: TypeSpec | undefined, to: TypeSpec): boolean {
  if (!from) return false;
  const a = canonical(from);
  const b = canonical(to);
  if (a.array !== b.array) return false;
  if (a.name === b.name && a.mods.join() === b.mods.join()) return true;
  const textual = (n: string) => n === "varchar" || n === "text";
  if (textual(a.name) && textual(b.name)) {
    if (b.name === "text" || b.mods.length === 0) return true;
    // varchar(n) → varchar(m): metadata only when m ≥ n; text → varchar(m) checks every row.
    return a.name === "varchar" && a.mods.length === 1 && b.mods[0]! >= a.mods[0]!;
  }
  if (a.name === "numeric" && b.name === "numeric") {
    if (b.mods.length === 0) return true;
    if (a.mods.length === 0) return false;
    const [p1, s1 = 0] = a.mods;
    const [p2, s2 = 0] = b.mods;
    return s1 === s2 && p2! >= p1!;
  }
  return false;
}

/** "varchar(20)" for messages. */
export function typeText(t: TypeSpec): string {
  return `${t.name}${t.mods.length ? `(${t.mods.join(",")})` : ""}${t.array ? "[]" : ""}`;
}
