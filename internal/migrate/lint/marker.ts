// The consent marker's line pattern, apart from the gate (consent.ts) so that
// reading the folder (source.ts) loads neither the linter nor the parser.

/** A whole line `-- migrate:allow …`; group 1 is what follows the keyword. */
export const ALLOW_LINE = /^[ \t]*--[ \t]*migrate:allow\b(.*)$/;

/**
 * The text whose checksum is recorded: the file less its whole-line consent
 * markers, so adding consent to an applied file is not an edit. A file
 * without a marker is returned unchanged (its checksum is as it always was).
 */
export function checksummedText(text: string): string {
  if (!text.includes("migrate:allow")) return text;
  return text
    .split("\n")
    .filter((line) => !ALLOW_LINE.test(line))
    .join("\n");
}
