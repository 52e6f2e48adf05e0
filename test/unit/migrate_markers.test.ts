import { describe, expect, it } from "vitest";
import { readMarkers } from "../../internal/migrate/lint/consent.js";
import { checksummedText, markerLines } from "../../internal/migrate/lint/marker.js";

const lines = (text: string) => markerLines(text).map((m) => m.index + 1);

describe("consent markers are comment lines of the file, not SQL", () => {
  it("a marker-shaped line inside a dollar-quoted body, a string, an identifier or a block comment is not a marker", () => {
    const text = [
      '-- migrate:allow ban-drop-table "real"', // 1
      "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $body$", // 2
      '-- migrate:allow ban-drop-table "in a body"', // 3
      "SELECT 1::text $body$;", // 4
      "SELECT 'a", // 5
      '-- migrate:allow ban-drop-table "in a string"', // 6
      "';", // 7
      "/* outer /* nested */", // 8
      '-- migrate:allow ban-drop-table "in a comment"', // 9
      "*/", // 10
      'SELECT "x', // 11
      '-- migrate:allow ban-drop-table "in an identifier"', // 12
      '";', // 13
      "SELECT E'\\'", // 14: an escaped quote keeps the string open
      '-- migrate:allow ban-drop-table "in an E string"', // 15
      "';", // 16
      "SELECT $$ $tag$ $$;", // 17: a different tag inside does not close or open
      '  -- migrate:allow ban-drop-table "real, indented"', // 18
      "DROP TABLE t;", // 19
    ].join("\n");
    expect(lines(text)).toEqual([1, 18]);
  });

  it("the checksum leaves out real markers only: editing a body's marker-shaped line is an edit", () => {
    const body = (word: string) =>
      `CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$\n-- migrate:allow ban-drop-table "${word}"\nSELECT 1::text $$;\n`;
    expect(checksummedText(body("one"))).not.toEqual(checksummedText(body("two")));
    const marked = `-- migrate:allow ban-drop-table "why"\nDROP TABLE t;\n`;
    expect(checksummedText(marked)).toEqual("DROP TABLE t;\n");
    expect(checksummedText("DROP TABLE t;\n")).toEqual("DROP TABLE t;\n");
  });
});

describe("reading a marker", () => {
  it("an old name shared by several rules is refused, naming them; a unique one is read as the rule's id", () => {
    const shared = readMarkers('-- migrate:allow constraint-not-valid "small"\n', "f.sql");
    expect(shared.allows).toEqual([]);
    expect(shared.errors[0]).toMatch(
      /f\.sql:1: .*"constraint-not-valid" is an old name of several rules \(.*adding-foreign-key-constraint.*constraint-missing-not-valid.*\)/,
    );
    const old = readMarkers('-- migrate:allow drop-column "unused since v2"\n', "f.sql");
    expect(old).toEqual({
      allows: [{ rule: "ban-drop-column", reason: "unused since v2", line: 1 }],
      errors: [],
    });
  });

  it("a reason may quote; an empty or unquoted one is refused", () => {
    expect(
      readMarkers('-- migrate:allow ban-drop-column "the "legacy" column is unread"', "f.sql")
        .allows,
    ).toEqual([{ rule: "ban-drop-column", reason: 'the "legacy" column is unread', line: 1 }]);
    for (const bad of ['""', '"  "', "because", '"open'])
      expect(readMarkers(`-- migrate:allow ban-drop-column ${bad}`, "f.sql").errors[0]).toMatch(
        /has no reason/,
      );
  });
});
