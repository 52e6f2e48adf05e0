import { getOption, type DescMessage } from "@bufbuild/protobuf";
import { RE2JS } from "@bufbuild/re2";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { describe, expect, it } from "vitest";
import { file_kms_v1_kms } from "../../api/kms/v1/kms_pb.js";
import { file_user_v1_user } from "../../api/user/v1/user_pb.js";
import { regexMatcher } from "../../internal/pkg/regex/matcher.js";
import { nativePattern } from "../../internal/pkg/regex/native.js";

const re2 = (pattern: string, input: string) => RE2JS.compile(pattern).test(input);

// Every string.pattern our protos declare.
const schemaPatterns = [
  ...new Set(
    [file_kms_v1_kms, file_user_v1_user]
      .flatMap((file) => file.messages)
      .flatMap((m: DescMessage) => m.fields)
      .map((f) => getOption(f, fieldRules).type)
      .flatMap((rule) =>
        rule.case === "string" && rule.value.pattern ? [rule.value.pattern] : [],
      ),
  ),
];

// Characters where the engines could part: ASCII around each class's edges,
// line ends, white space RE2 and JavaScript disagree on, non-ASCII letters,
// an astral character (two UTF-16 units, one code point), a lone surrogate.
const alphabet = [
  ..."aAzZ09_.+-@ ",
  "\n",
  "\r",
  "\t",
  "\v",
  "\u00a0",
  "\u2028",
  "é",
  "ß",
  "😀",
  "\ud800",
  "\0",
];

// A fixed sequence (no Math.random): the same inputs on every run.
function* inputs(seed: number, count: number): Generator<string> {
  let x = seed;
  const next = () => (x = (x * 1103515245 + 12345) % 2 ** 31);
  for (let i = 0; i < count; i++) {
    const length = next() % 40;
    let s = "";
    for (let j = 0; j < length; j++) s += alphabet[next() % alphabet.length];
    yield s;
  }
}

describe("regexMatcher", () => {
  it("When our protos are read, Then they declare the patterns this test expects", () => {
    expect(new Set(schemaPatterns)).toEqual(
      new Set([
        "\\S",
        "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$",
        "^[a-zA-Z][a-zA-Z0-9_]{2,31}$",
        "^\\+[1-9][0-9]{1,14}$",
      ]),
    );
  });

  it.each(schemaPatterns.filter((p) => p !== "\\S"))(
    "When the schema pattern %s is compiled, Then V8's RegExp runs it",
    (pattern) => {
      expect(nativePattern(pattern)).toBeInstanceOf(RegExp);
    },
  );

  it.each(schemaPatterns)(
    "When %s meets thousands of inputs, Then every answer is RE2's",
    (pattern) => {
      const match = regexMatcher();
      const valid = {
        "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$": ["users.email", "a", "a.b_c.d9"],
        "^[a-zA-Z][a-zA-Z0-9_]{2,31}$": ["ann", "A" + "b".repeat(31)],
        "^\\+[1-9][0-9]{1,14}$": ["+15550100", "+1" + "0".repeat(14)],
        "\\S": ["x"],
      }[pattern]!;
      const near = valid.flatMap((v) => [v, `${v}\n`, `\n${v}`, `${v}é`, `${v}😀`, `${v}0`, v + v]);
      for (const input of [...near, ...inputs(pattern.length, 3000)]) {
        expect(match(pattern, input), JSON.stringify(input)).toBe(re2(pattern, input));
      }
    },
  );

  // Each construct whose meaning differs between the engines, with an input
  // on which V8 would answer otherwise: kept on RE2, which answers.
  it.each([
    ["\\S", "\u00a0", "RE2's \\S is not [\\t\\n\\f\\r ]: it takes a no-break space"],
    ["^\\s$", "\v", "RE2's \\s leaves out the vertical tab"],
    ["^.$", "😀", "RE2's . takes a code point, not a UTF-16 unit"],
    ["^.$", "\r", "RE2's . takes a carriage return"],
    ["^[^a]$", "😀", "a negated class takes a code point"],
    ["^[[:alpha:]]$", "a", "RE2 has POSIX classes"],
    ["^\\pL$", "é", "RE2 has Unicode classes"],
    ["^[]a]$", "]", "RE2 reads ] first in a class as itself"],
    ["^a\\z", "a", "RE2 has \\z"],
  ])("When the pattern is %j and the input %j, Then the answer is RE2's (%s)", (pattern, input) => {
    expect(nativePattern(pattern)).toBeUndefined();
    let v8: boolean | undefined;
    try {
      v8 = new RegExp(pattern).test(input);
    } catch {
      v8 = undefined;
    }
    expect(v8).not.toBe(re2(pattern, input));
    expect(regexMatcher()(pattern, input)).toBe(re2(pattern, input));
  });

  it.each([
    ["^abc$", "abc\n", "$ before a final newline (Perl, Python) is in neither engine"],
    ["^[a-z]{2}$", "éa", "a non-ASCII letter fails both ASCII classes"],
    ["^[a-z]{2}$", "😀", "an astral character fails both, one unit or two"],
  ])(
    "When the pattern is %j and the input %j, Then both engines agree and V8 runs it (%s)",
    (pattern, input) => {
      expect(nativePattern(pattern)).toBeInstanceOf(RegExp);
      expect(new RegExp(pattern).test(input)).toBe(re2(pattern, input));
      expect(regexMatcher()(pattern, input)).toBe(false);
    },
  );

  it.each([
    ["^(a+)+$", "a quantified group that repeats"],
    ["^(a|a)*$", "alternatives that overlap in a loop"],
    ["^a*a*$", "two loops that take the same character"],
    ["^(a?)*$", "a loop over what may match nothing"],
    ["^(a{1,2}){2}$", "counted repetitions that overlap"],
    ["^a|b$", "an alternation the anchors do not enclose"],
    ["[0-9]", "an unanchored pattern"],
    ["^(?i)a$", "flags"],
  ])("When the pattern is %j (%s), Then it stays with RE2", (pattern) => {
    expect(nativePattern(pattern)).toBeUndefined();
  });

  it("When RE2 refuses a pattern, Then matching throws as protovalidate's default does", () => {
    const match = regexMatcher();
    expect(() => match("^a{1001}$", "a")).toThrow();
    expect(() => match("^(a$", "a")).toThrow();
  });

  it("When more patterns arrive than it keeps, Then it still answers each", () => {
    const match = regexMatcher(2);
    for (const n of [1, 2, 3, 1, 2, 3]) expect(match(`^x{${n}}$`, "x".repeat(n))).toBe(true);
  });
});
