// Marker lines (consent, phase, backfill), apart from the gate (consent.ts)
// so that reading the folder (source.ts) loads neither the linter nor the parser.

/** A marker: its 0-based line and what follows `migrate:WORD`. */
export interface MarkerLine {
  index: number;
  rest: string;
}

/** Marker words: consent (`allow`), a file's phase, a batched backfill. */
export type MarkerWord = "allow" | "phase" | "backfill";

const LINE: Record<MarkerWord, RegExp> = {
  allow: /^[ \t]*--[ \t]*migrate:allow\b(.*)$/,
  phase: /^[ \t]*--[ \t]*migrate:phase\b(.*)$/,
  backfill: /^[ \t]*--[ \t]*migrate:backfill\b(.*)$/,
};

// A phase or backfill line misspelt in case or spacing (`-- Migrate: Phase
// contract 1`) would leave the file silently unmarked: a contract applied
// as a plain migration, a backfill run whole. Such a line counts when what
// follows is shaped like the marker's own words, so that prose (`-- migrate:
// phase one of the cleanup`) stays a comment. Consent keeps its exact form:
// its lines are left out of the checksum, and what counts as one may not move.
const LOOSE: Partial<Record<MarkerWord, { line: RegExp; rest: RegExp }>> = {
  phase: {
    line: /^[ \t]*--[ \t]*migrate[ \t]*:[ \t]*phase\b(.*)$/i,
    rest: /^\s*((expand|contract)\b.*)?$/i,
  },
  backfill: {
    line: /^[ \t]*--[ \t]*migrate[ \t]*:[ \t]*backfill\b(.*)$/i,
    rest: /^(\s+[a-z_]+=\S*)*\s*$/i,
  },
};
const ANYWHERE: Record<MarkerWord, RegExp> = {
  allow: /migrate:allow/,
  phase: /migrate[ \t]*:[ \t]*phase/i,
  backfill: /migrate[ \t]*:[ \t]*backfill/i,
};

/**
 * The `-- migrate:WORD …` lines of `text` that are comments of the file
 * itself: a line of the same shape inside a string, a quoted identifier, a
 * block comment or a dollar-quoted body (a function's source) is SQL, not a
 * marker.
 */
export function markerLines(text: string, word: MarkerWord = "allow"): MarkerLine[] {
  if (!ANYWHERE[word].test(text)) return [];
  const found: MarkerLine[] = [];
  const lines = text.split("\n");
  let inside = false;
  const scan = sqlScanner();
  for (const [index, line] of lines.entries()) {
    const m = inside ? null : (LINE[word].exec(line) ?? loose(word, line));
    if (m) found.push({ index, rest: m[1]! });
    inside = scan(`${line}\n`);
  }
  return found;
}

/**
 * The text whose checksum is recorded: the file less its consent markers, so
 * adding consent to an applied file is not an edit. A file without a marker
 * is returned unchanged (its checksum is as it always was).
 */
export function checksummedText(text: string): string {
  const markers = markerLines(text);
  if (markers.length === 0) return text;
  const drop = new Set(markers.map((m) => m.index));
  return text
    .split("\n")
    .filter((_, i) => !drop.has(i))
    .join("\n");
}

function loose(word: MarkerWord, line: string): RegExpExecArray | null {
  const form = LOOSE[word];
  const m = form?.line.exec(line);
  return m && form!.rest.test(m[1]!) ? m : null;
}

// $tag$ or $$, matched where the scan stands (sticky: no copy of the rest).
const DOLLAR_TAG = /\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y;

// A character that continues an identifier (so `a$b` and `xE'…'` are not quotes).
const WORD = /[A-Za-z0-9_$\u0080-\uffff]/;

type State =
  | { in: "code" }
  | { in: "string"; backslash: boolean }
  | { in: "ident" }
  | { in: "block"; depth: number }
  | { in: "dollar"; tag: string };

/**
 * PostgreSQL's lexical states, as far as a marker cares: fed the text in
 * pieces, it answers whether the piece ended inside a string, quoted
 * identifier, block comment or dollar quote (a line comment ends with its line).
 */
function sqlScanner(): (piece: string) => boolean {
  let state: State = { in: "code" };
  return (piece) => {
    let i = 0;
    while (i < piece.length) {
      const c = piece[i]!;
      const next = piece[i + 1];
      switch (state.in) {
        case "code":
          if (c === "-" && next === "-") {
            i = piece.indexOf("\n", i);
            if (i < 0) i = piece.length;
          } else if (c === "/" && next === "*") {
            state = { in: "block", depth: 1 };
            i += 2;
          } else if (c === "'") {
            // E'…' takes backslash escapes; the E must not end a longer word.
            const e = piece[i - 1] === "E" || piece[i - 1] === "e";
            state = { in: "string", backslash: e && !WORD.test(piece[i - 2] ?? " ") };
            i++;
          } else if (c === '"') {
            state = { in: "ident" };
            i++;
          } else if (c === "$" && !WORD.test(piece[i - 1] ?? " ")) {
            DOLLAR_TAG.lastIndex = i;
            const tag = DOLLAR_TAG.exec(piece);
            if (tag) {
              state = { in: "dollar", tag: tag[0] };
              i += tag[0].length;
            } else i++;
          } else i++;
          break;
        case "string":
          if (state.backslash && c === "\\") i += 2;
          else if (c === "'" && next === "'") i += 2;
          else {
            if (c === "'") state = { in: "code" };
            i++;
          }
          break;
        case "ident":
          if (c === '"' && next === '"') i += 2;
          else {
            if (c === '"') state = { in: "code" };
            i++;
          }
          break;
        case "block":
          if (c === "/" && next === "*") {
            state.depth++;
            i += 2;
          } else if (c === "*" && next === "/") {
            state = --state.depth === 0 ? { in: "code" } : state;
            i += 2;
          } else i++;
          break;
        case "dollar": {
          const end = piece.indexOf(state.tag, i);
          if (end < 0) i = piece.length;
          else {
            i = end + state.tag.length;
            state = { in: "code" };
          }
          break;
        }
      }
    }
    return state.in !== "code";
  };
}
