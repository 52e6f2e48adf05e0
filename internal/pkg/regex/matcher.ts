import { RE2JS } from "@bufbuild/re2";
import { nativePattern } from "./native.js";

/** Whether `pattern` matches somewhere in `against`, as protovalidate's `regexMatch` asks. */
export type RegexMatcher = (pattern: string, against: string) => boolean;

/**
 * RE2's answers (the engine protovalidate uses by default, with its errors
 * for patterns RE2 refuses), given by V8's RegExp where nativePattern shows
 * it gives the same ones in linear time. Each pattern is compiled once; up to
 * `maxPatterns` are kept, then all are dropped (a CEL rule may build patterns
 * from input), as protovalidate's own matcher does.
 */
export function regexMatcher(maxPatterns = 1024): RegexMatcher {
  const compiled = new Map<string, (against: string) => boolean>();
  return (pattern, against) => {
    let test = compiled.get(pattern);
    if (test === undefined) {
      // First RE2, so that a pattern it refuses fails as it always did.
      const re2 = RE2JS.compile(pattern);
      const native = nativePattern(pattern);
      test = native ? (s) => native.test(s) : (s) => re2.test(s);
      if (compiled.size >= maxPatterns) compiled.clear();
      compiled.set(pattern, test);
    }
    return test(against);
  };
}
