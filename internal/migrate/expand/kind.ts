import { ExpandOptionError } from "./errors.js";

// What a kind of expand/contract change declares and builds.

/** The `create --expand` options, by flag name without `--`. */
export const EXPAND_OPTIONS = [
  "table",
  "column",
  "to",
  "type",
  "old-type",
  "using",
  "back",
  "fill",
  "into",
  "join",
] as const;

export type ExpandOption = (typeof EXPAND_OPTIONS)[number];

/** The values given: `into` may be given more than once. */
export type ExpandValues = Partial<Record<ExpandOption, string | string[]>>;

/** The statements of the four files (each statement with any comment lines above it). */
export interface Phases {
  /** Comment lines (without `-- `) saying what the change does, for the up files' headers. */
  summary: string[];
  expandUp: string[];
  expandDown: string[];
  contractUp: string[];
  contractDown: string[];
}

export interface Kind {
  name: string;
  required: readonly ExpandOption[];
  optional: readonly ExpandOption[];
  /** The files' statements; throws ExpandOptionError naming the option at fault. */
  build(values: ExpandValues): Phases;
}

/** The single value of `option` (required options are checked before build runs). */
export function one(values: ExpandValues, option: ExpandOption): string {
  const v = values[option];
  if (Array.isArray(v)) {
    if (v.length !== 1)
      throw new ExpandOptionError(`--${option} given more than once: give it once`);
    return v[0]!;
  }
  return v ?? "";
}

/** The value of an optional `option`, or undefined. */
export function maybe(values: ExpandValues, option: ExpandOption): string | undefined {
  return values[option] === undefined ? undefined : one(values, option);
}

/** Refuses a new column named like another column of the change. */
export function distinctColumns(columns: [option: string, name: string][]): void {
  for (const [i, [option, name]] of columns.entries()) {
    const before = columns.slice(0, i).find(([, n]) => n === name);
    if (before)
      throw new ExpandOptionError(
        `${option} ${JSON.stringify(name)}: the same column as ${before[0]}; give another name`,
      );
  }
}
