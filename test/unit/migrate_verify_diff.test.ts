import { describe, expect, it } from "vitest";
import {
  objectKey,
  type Catalog,
  type CatalogObject,
  type ObjectKind,
} from "../../internal/migrate/verify/catalog.js";
import {
  diffCatalogs,
  firstDifference,
  inconsistent,
  oneLine,
} from "../../internal/migrate/verify/diff.js";

// The schema half of `migrate verify`, without a database: two catalogs as
// catalog.ts reads them, compared in words a person can act on.

function object(
  kind: ObjectKind,
  name: string,
  definition: string,
  attributes: CatalogObject["attributes"] = {},
  more: Partial<CatalogObject> = {},
): CatalogObject {
  return { kind, name, parent: null, definition, attributes, informative: {}, ...more };
}

function catalog(...objects: CatalogObject[]): Catalog {
  return Object.fromEntries(objects.map((o) => [objectKey(o.kind, o.name), o]));
}

const users = object("table", "users", "CREATE TABLE users", { persistence: "LOGGED" });
const column = (name: string, type: string, nullability = "NULL") =>
  object(
    "column",
    `users.${name}`,
    `ALTER TABLE users ADD COLUMN ${name} ${type}`,
    { type, nullability, default: null },
    { parent: objectKey("table", "users") },
  );
const emailIndex = object(
  "index",
  "users_email_idx",
  "CREATE UNIQUE INDEX users_email_idx ON public.users USING btree (email)",
  {
    definition: "CREATE UNIQUE INDEX users_email_idx ON public.users USING btree (email)",
    validity: "valid",
  },
  { parent: objectKey("table", "users") },
);
const fn = (body: string) => {
  const def = `CREATE OR REPLACE FUNCTION public.f(i integer)\n RETURNS integer\n LANGUAGE sql\nAS $function$${body}$function$\n`;
  return object("function", "f(integer)", def, { definition: def });
};

const migrations = catalog(users, column("email", "text", "NOT NULL"), emailIndex, fn("select i"));

describe("diffCatalogs", () => {
  it("finds nothing between equal catalogs", () => {
    expect(diffCatalogs(migrations, structuredClone(migrations))).toEqual([]);
  });

  it("names a column added by hand, an index dropped and a function replaced, and why each matters", () => {
    const database = catalog(
      users,
      column("email", "text", "NOT NULL"),
      column("nickname", "text"),
      fn("select i + 1"),
    );
    const found = diffCatalogs(migrations, database);
    expect(found.map((d) => [d.change, d.kind, d.name])).toEqual([
      ["extra", "column", "users.nickname"],
      ["missing", "index", "users_email_idx"],
      ["changed", "function", "f(integer)"],
    ]);
    expect(found[0]!.message).toBe(
      "column users.nickname exists in the database but not in the migrations (added by hand?): ALTER TABLE users ADD COLUMN nickname text",
    );
    expect(found[1]!.message).toBe(
      "index users_email_idx is missing (the migrations create it: CREATE UNIQUE INDEX users_email_idx ON public.users USING btree (email))",
    );
    expect(found[2]!.message).toBe(
      `function f(integer) differs from the migrations' definition (replaced by hand?): line 4 is "AS $function$select i + 1$function$" in the database, "AS $function$select i$function$" in the migrations`,
    );
    expect(found[2]!.database!.definition).toContain("select i + 1");
    expect(inconsistent(found)).toBe(true);
  });

  it("reports each changed attribute with both values, and a hint where there is a likely cause", () => {
    const invalid = {
      ...emailIndex,
      attributes: { ...emailIndex.attributes, validity: "INVALID" },
    };
    const database = catalog(users, column("email", "varchar(100)"), invalid, fn("select i"));
    const [col, index] = diffCatalogs(migrations, database);
    expect(col!.message).toBe(
      "column users.email: type is varchar(100) in the database, text in the migrations; nullability is NULL in the database, NOT NULL in the migrations",
    );
    expect(col!.migrations).toEqual({ type: "text", nullability: "NOT NULL" });
    expect(col!.database).toEqual({ type: "varchar(100)", nullability: "NULL" });
    expect(index!.message).toMatch(
      /^index users_email_idx: validity is INVALID in the database, valid in the migrations \(an interrupted concurrent build/,
    );
  });

  it("reports a table once, not each of its columns and indexes, when the table itself is missing or extra", () => {
    const scratch = object("table", "scratch", "CREATE TABLE scratch");
    const inScratch = { parent: objectKey("table", "scratch") };
    const database = catalog(
      ...Object.values(migrations),
      scratch,
      object("column", "scratch.id", "ALTER TABLE scratch ADD COLUMN id integer", {}, inScratch),
      object(
        "index",
        "scratch_id",
        "CREATE INDEX scratch_id ON public.scratch (id)",
        {},
        inScratch,
      ),
    );
    expect(diffCatalogs(migrations, database).map((d) => d.name)).toEqual(["scratch"]);
    expect(diffCatalogs(database, migrations).map((d) => [d.change, d.name])).toEqual([
      ["missing", "scratch"],
    ]);
  });

  it("notes an extension's version without calling the database inconsistent", () => {
    const ext = (version: string) =>
      object(
        "extension",
        "pgcrypto",
        "CREATE EXTENSION pgcrypto SCHEMA public",
        { schema: "public" },
        { informative: { version } },
      );
    const found = diffCatalogs(catalog(ext("1.3.1")), catalog(ext("1.3")));
    expect(found).toMatchObject([{ change: "note", kind: "extension", name: "pgcrypto" }]);
    expect(found[0]!.message).toBe(
      "extension pgcrypto: version 1.3 in the database, 1.3.1 in a fresh install (informative only)",
    );
    expect(inconsistent(found)).toBe(false);
  });

  it("orders containers before their contents, then by name", () => {
    const database = catalog(
      object("trigger", "users.t", "CREATE TRIGGER t …"),
      object("index", "b_idx", "CREATE INDEX b_idx …"),
      object("index", "a_idx", "CREATE INDEX a_idx …"),
      object("schema", "audit", "CREATE SCHEMA audit"),
    );
    expect(diffCatalogs({}, database).map((d) => d.name)).toEqual([
      "audit",
      "a_idx",
      "b_idx",
      "users.t",
    ]);
  });
});

describe("one-line renderings", () => {
  it("keeps a definition's first line and marks what it leaves out", () => {
    expect(oneLine("CREATE INDEX i ON t (a)")).toBe("CREATE INDEX i ON t (a)");
    expect(oneLine("CREATE VIEW v AS\n SELECT 1")).toBe("CREATE VIEW v AS …");
    expect(oneLine("x".repeat(200))).toBe(`${"x".repeat(160)} …`);
  });

  it("names the first line where two renderings part, including one that ends early", () => {
    expect(firstDifference("a\nb\nc", "a\nB\nc")).toBe(
      'line 2 is "B" in the database, "b" in the migrations',
    );
    expect(firstDifference("a\nb", "a")).toBe(
      'line 2 is (nothing) in the database, "b" in the migrations',
    );
  });
});
