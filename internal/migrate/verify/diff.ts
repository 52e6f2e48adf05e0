import type { Attributes, Catalog, CatalogObject, ObjectKind } from "./catalog.js";

// Two catalogs compared object by object: what the applied migrations make
// (replayed) against what the database has. Pure: no database here.

/**
 * extra: in the database only; missing: in the migrations only; changed:
 * in both, unlike; note: unlike only in what is informative (an
 * extension's version), not an inconsistency.
 */
export type Change = "extra" | "missing" | "changed" | "note";

export interface Difference {
  change: Change;
  kind: ObjectKind;
  name: string;
  /** The difference in words, with what to look at or do. */
  message: string;
  /** The attributes that differ, as the migrations make them and as the database has them (changed, note). */
  migrations?: Attributes;
  database?: Attributes;
  /** The object's SQL where only one side has it (extra: the database's; missing: the migrations'). */
  definition?: string;
}

// Report order: containers before what they contain.
const ORDER: ObjectKind[] = [
  "schema",
  "extension",
  "type",
  "table",
  "column",
  "constraint",
  "index",
  "sequence",
  "view",
  "materialized view",
  "function",
  "trigger",
];

/** Whether the differences make the database inconsistent with its migrations (notes do not). */
export function inconsistent(differences: Difference[]): boolean {
  return differences.some((d) => d.change !== "note");
}

/**
 * Every difference between `migrations` (the applied files replayed) and
 * `database`. An object inside a missing or extra one (a column of a table
 * added by hand) is not reported apart from it.
 */
export function diffCatalogs(migrations: Catalog, database: Catalog): Difference[] {
  const found: Difference[] = [];
  const inside = (from: Catalog, other: Catalog, o: CatalogObject): boolean =>
    o.parent !== null && o.parent in from && !(o.parent in other);
  for (const [key, o] of Object.entries(database)) {
    if (key in migrations || inside(database, migrations, o)) continue;
    found.push({
      change: "extra",
      kind: o.kind,
      name: o.name,
      message: `${o.kind} ${o.name} exists in the database but not in the migrations (added by hand?): ${oneLine(o.definition)}`,
      definition: o.definition,
    });
  }
  for (const [key, o] of Object.entries(migrations)) {
    const actual = database[key];
    if (!actual) {
      if (inside(migrations, database, o)) continue;
      found.push({
        change: "missing",
        kind: o.kind,
        name: o.name,
        message: `${o.kind} ${o.name} is missing (the migrations create it: ${oneLine(o.definition)})`,
        definition: o.definition,
      });
      continue;
    }
    const changed = unlike(o.attributes, actual.attributes);
    if (changed.length > 0) {
      found.push({
        change: "changed",
        kind: o.kind,
        name: o.name,
        message: changedMessage(o, changed, actual.attributes),
        migrations: pick(o.attributes, changed),
        database: pick(actual.attributes, changed),
      });
      continue;
    }
    const informative = unlike(o.informative, actual.informative);
    if (informative.length > 0) {
      const words = informative.map(
        (a) =>
          `${a} ${shown(actual.informative[a])} in the database, ${shown(o.informative[a])} in a fresh install`,
      );
      found.push({
        change: "note",
        kind: o.kind,
        name: o.name,
        message: `${o.kind} ${o.name}: ${words.join("; ")} (informative only)`,
        migrations: pick(o.informative, informative),
        database: pick(actual.informative, informative),
      });
    }
  }
  const rank = (k: ObjectKind) => ORDER.indexOf(k);
  return found.sort(
    (a, b) => rank(a.kind) - rank(b.kind) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
}

function unlike(a: Attributes, b: Attributes): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.filter((k) => (a[k] ?? null) !== (b[k] ?? null));
}

function pick(attrs: Attributes, keys: string[]): Attributes {
  return Object.fromEntries(keys.map((k) => [k, attrs[k] ?? null]));
}

// What a person does about each kind of change, where there is a likely cause.
const HINTS: Record<string, string> = {
  validity: "an interrupted concurrent build: it enforces nothing; DROP it and rerun its build",
  enabled: "ALTER TABLE … ENABLE/DISABLE TRIGGER by hand?",
};

function changedMessage(o: CatalogObject, changed: string[], database: Attributes): string {
  const parts: string[] = [];
  for (const a of changed) {
    if (a === "definition") continue;
    const hint = HINTS[a] ? ` (${HINTS[a]})` : "";
    parts.push(
      `${a} is ${shown(database[a])} in the database, ${shown(o.attributes[a])} in the migrations${hint}`,
    );
  }
  if (!changed.includes("definition")) return `${o.kind} ${o.name}: ${parts.join("; ")}`;
  const cause = o.kind === "function" ? "replaced" : "changed";
  const where = firstDifference(o.attributes.definition ?? "", database.definition ?? "");
  return [
    `${o.kind} ${o.name} differs from the migrations' definition (${cause} by hand?): ${where}`,
    ...parts,
  ].join("; ");
}

function shown(value: string | null | undefined): string {
  return value === null || value === undefined ? "none" : oneLine(value);
}

const MAX_SHOWN = 160;

/** A definition on one line for a report: its first line, shortened, with … for the rest. */
export function oneLine(text: string): string {
  const lines = text.trim().split("\n");
  let first = lines[0]!.trim();
  const more = lines.length > 1 || first.length > MAX_SHOWN;
  if (first.length > MAX_SHOWN) first = first.slice(0, MAX_SHOWN);
  return more ? `${first} …` : first;
}

/** Where two renderings first part: the line and both versions of it. */
export function firstDifference(migrations: string, database: string): string {
  const a = migrations.split("\n");
  const b = database.split("\n");
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] === b[i]) continue;
    const line = (s: string | undefined) =>
      s === undefined ? "(nothing)" : JSON.stringify(oneLine(s) || s);
    return `line ${i + 1} is ${line(b[i])} in the database, ${line(a[i])} in the migrations`;
  }
  return "they differ";
}
