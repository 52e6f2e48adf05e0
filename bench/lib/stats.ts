/** The middle value of `xs`; of an even count, the mean of the two middle ones. NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = xs.toSorted((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * " (rounds lowest–highest)" of each round's ratio: how far the machine
 * moved the answer within one run. Empty for fewer than two rounds.
 */
export function roundSpread(ratios: readonly number[]): string {
  if (ratios.length < 2) return "";
  return ` (rounds ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
}
