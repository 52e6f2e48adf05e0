// When a pattern written for RE2 may be run by V8's own RegExp instead: RE2
// (through @bufbuild/re2, a JavaScript port) took 1.7 µs to match a field
// name that RegExp matches in 0.03 µs. Only where the two provably agree, and
// where a backtracking engine cannot be made slow (RE2 promises linear time
// whatever the input): anything this does not recognise stays with RE2.
//
// Agreement: the pattern is anchored at both ends and made only of ASCII
// literals and non-negated ASCII classes (no `.`, `\s`, `\S`, negation, flags,
// non-ASCII or POSIX classes, whose meanings differ between the engines:
// RE2 counts code points, its `\s` is [\t\n\f\r ], its `$` never matches
// before a final newline). A character outside ASCII then fails both engines
// at the same place, whatever their unit of counting.
//
// Speed: the pattern is deterministic (1-unambiguous): at every point, at most
// one of the next possible atoms can take the next character, so a
// backtracking engine abandons each wrong choice after one character and
// matches in linear time. No quantifier applies to what may match nothing.

/** A set of ASCII characters, bit i for character code i. */
type Chars = bigint;

type Node =
  | { kind: "chars"; chars: Chars }
  | { kind: "seq"; items: Node[] }
  | { kind: "alt"; options: Node[] }
  | { kind: "repeat"; node: Node; min: number; max: number };

/** RE2 refuses counts above this. */
const maxRepeat = 1000;
/** Past this many atoms once counted repetitions are spelled out, the check is not worth it. */
const maxPositions = 2048;

const punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const special = "\\^$.|?*+()[]{}";

const range = (lo: number, hi: number): Chars => ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);
const one = (c: string): Chars => 1n << BigInt(c.charCodeAt(0));
const digits = range(48, 57);
const word = digits | range(65, 90) | range(97, 122) | one("_");

class Unsupported extends Error {}

/**
 * A RegExp that answers as RE2 does for `pattern`, in linear time; undefined
 * when that cannot be shown (the caller then keeps RE2). The pattern must be
 * one RE2 accepts: this does not reproduce RE2's refusals.
 */
export function nativePattern(pattern: string): RegExp | undefined {
  if (!pattern.startsWith("^") || !pattern.endsWith("$") || pattern.endsWith("\\$")) return;
  let tree: Node;
  try {
    const parser = new Parser(pattern.slice(1, -1));
    tree = parser.sequence();
    // A `|` at the top would bind looser than the anchors (^a|b$).
    if (!parser.done()) return;
    if (!deterministic(tree)) return;
  } catch (err) {
    if (err instanceof Unsupported) return;
    throw err;
  }
  try {
    return new RegExp(pattern);
  } catch {
    return undefined;
  }
}

class Parser {
  private at = 0;
  constructor(private readonly text: string) {}

  done(): boolean {
    return this.at === this.text.length;
  }

  private peek(): string | undefined {
    return this.text[this.at];
  }

  private next(): string {
    const c = this.text[this.at++];
    if (c === undefined) throw new Unsupported();
    return c;
  }

  alternation(): Node {
    const options = [this.sequence()];
    while (this.peek() === "|") {
      this.at++;
      options.push(this.sequence());
    }
    return options.length === 1 ? options[0]! : { kind: "alt", options };
  }

  sequence(): Node {
    const items: Node[] = [];
    for (let c = this.peek(); c !== undefined && c !== "|" && c !== ")"; c = this.peek()) {
      items.push(this.quantified(this.atom()));
    }
    return { kind: "seq", items };
  }

  private atom(): Node {
    const c = this.next();
    if (c === "(") {
      if (this.peek() === "?") {
        this.at++;
        if (this.next() !== ":") throw new Unsupported();
      }
      const inner = this.alternation();
      if (this.next() !== ")") throw new Unsupported();
      return inner;
    }
    if (c === "[") return { kind: "chars", chars: this.klass() };
    if (c === "\\") return { kind: "chars", chars: this.escape() };
    return { kind: "chars", chars: this.literal(c) };
  }

  private literal(c: string): Chars {
    const code = c.charCodeAt(0);
    if (code < 0x20 || code > 0x7e || special.includes(c)) throw new Unsupported();
    return one(c);
  }

  // `\d`, `\w`, or an escaped punctuation character.
  private escape(): Chars {
    const c = this.next();
    if (c === "d") return digits;
    if (c === "w") return word;
    if (punctuation.includes(c)) return one(c);
    throw new Unsupported();
  }

  private klass(): Chars {
    if (this.peek() === "^" || this.peek() === "]") throw new Unsupported();
    let chars = 0n;
    while (this.peek() !== "]") {
      const first = this.member();
      if (this.peek() === "-" && this.text[this.at + 1] !== "]") {
        this.at++;
        const last = this.member();
        const [lo, hi] = [single(first), single(last)];
        if (lo > hi) throw new Unsupported();
        chars |= range(lo, hi);
      } else chars |= first;
    }
    this.at++;
    return chars;
  }

  // In a class every printable ASCII character but `\\`, `[` and `]` is itself.
  private member(): Chars {
    const c = this.next();
    if (c === "\\") return this.escape();
    const code = c.charCodeAt(0);
    if (code < 0x20 || code > 0x7e || c === "[" || c === "]") throw new Unsupported();
    return one(c);
  }

  private quantified(node: Node): Node {
    let min: number;
    let max: number;
    switch (this.peek()) {
      case "*":
        [min, max] = [0, Infinity];
        break;
      case "+":
        [min, max] = [1, Infinity];
        break;
      case "?":
        [min, max] = [0, 1];
        break;
      case "{": {
        const m = /^\{(\d{1,4})(,(\d{0,4}))?\}/.exec(this.text.slice(this.at));
        if (!m) throw new Unsupported();
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
        if (min > max || min > maxRepeat || (max !== Infinity && max > maxRepeat))
          throw new Unsupported();
        this.at += m[0].length - 1;
        break;
      }
      default:
        return node;
    }
    this.at++;
    // Lazy or greedy, the answer is the same.
    if (this.peek() === "?") this.at++;
    if ("*+?{".includes(this.peek() ?? "x")) throw new Unsupported();
    if (nullable(node)) throw new Unsupported();
    return { kind: "repeat", node, min, max };
  }
}

function single(chars: Chars): number {
  if ((chars & (chars - 1n)) !== 0n) throw new Unsupported();
  return chars.toString(2).length - 1;
}

function nullable(node: Node): boolean {
  switch (node.kind) {
    case "chars":
      return false;
    case "seq":
      return node.items.every(nullable);
    case "alt":
      return node.options.some(nullable);
    case "repeat":
      return node.min === 0 || nullable(node.node);
  }
}

// Glushkov's construction: every atom, counted repetitions spelled out, is a
// position; the pattern is deterministic when the positions that may come
// first, and those that may follow any one position, take disjoint characters.
interface Glushkov {
  nullable: boolean;
  first: number[];
  last: number[];
}

function deterministic(tree: Node): boolean {
  const chars: Chars[] = [];
  const follow: Set<number>[] = [];
  const link = (from: number[], to: number[]) => {
    for (const p of from) for (const q of to) follow[p]!.add(q);
  };
  const walk = (node: Node): Glushkov => {
    switch (node.kind) {
      case "chars": {
        if (chars.length >= maxPositions) throw new Unsupported();
        const p = chars.push(node.chars) - 1;
        follow.push(new Set());
        return { nullable: false, first: [p], last: [p] };
      }
      case "seq":
        return node.items.reduce<Glushkov>((acc, item) => concat(acc, walk(item), link), empty());
      case "alt": {
        const parts = node.options.map(walk);
        return {
          nullable: parts.some((g) => g.nullable),
          first: parts.flatMap((g) => g.first),
          last: parts.flatMap((g) => g.last),
        };
      }
      case "repeat": {
        // e{n,m}: n copies, then m - n nested optional ones (e(e(e)?)?), or a star.
        let acc = empty();
        for (let i = 0; i < node.min; i++) acc = concat(acc, walk(node.node), link);
        if (node.max === Infinity) {
          const loop = walk(node.node);
          link(loop.last, loop.first);
          return concat(acc, { ...loop, nullable: true }, link);
        }
        const optional: Glushkov[] = [];
        for (let i = node.min; i < node.max; i++) optional.push(walk(node.node));
        let tail = empty();
        for (const copy of optional.reverse()) {
          tail = { ...concat(copy, tail, link), nullable: true };
        }
        return concat(acc, tail, link);
      }
    }
  };
  const root = walk(tree);
  const disjoint = (positions: Iterable<number>) => {
    let seen = 0n;
    for (const p of new Set(positions)) {
      if ((seen & chars[p]!) !== 0n) return false;
      seen |= chars[p]!;
    }
    return true;
  };
  return disjoint(root.first) && follow.every(disjoint);
}

function empty(): Glushkov {
  return { nullable: true, first: [], last: [] };
}

function concat(a: Glushkov, b: Glushkov, link: (from: number[], to: number[]) => void): Glushkov {
  link(a.last, b.first);
  return {
    nullable: a.nullable && b.nullable,
    first: a.nullable ? [...a.first, ...b.first] : a.first,
    last: b.nullable ? [...a.last, ...b.last] : b.last,
  };
}
