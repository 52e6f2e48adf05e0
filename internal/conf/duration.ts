const unitSeconds: Record<string, number> = {
  ns: 1e-9,
  us: 1e-6,
  µs: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
};

const goDuration = /^(\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$/;
const term = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;

/**
 * Go-style durations as Kratos configs write them ("720h", "1m30s", "250ms")
 * to the protobuf JSON form ("2592000s"). Anything else is returned as is, so
 * the protobuf decoder reports it.
 */
export function toProtoDuration(value: unknown): unknown {
  if (typeof value !== "string" || !goDuration.test(value)) return value;
  let seconds = 0;
  for (const [, amount, unit] of value.matchAll(term))
    seconds += Number(amount) * unitSeconds[unit!]!;
  // Fixed-point: String(1e-9) would be "1e-9", which no decoder reads.
  return `${seconds.toFixed(9).replace(/0+$/, "").replace(/\.$/, "")}s`;
}

/** Milliseconds of a Go-style duration ("5s", "1m30s"); undefined when it is not one. */
export function parseDurationMs(value: string): number | undefined {
  if (!goDuration.test(value)) return undefined;
  return Math.round(Number((toProtoDuration(value) as string).slice(0, -1)) * 1000);
}

// protobuf-es reads "1sXYZ" or "1s\0" as 1s (its pattern is not anchored at
// the end): a value must be all duration, or it is refused.
const protoDuration = /^-?\d+(?:\.\d{1,9})?s$/;

/** Whether `value`, once through toProtoDuration, is a whole duration and nothing else. */
export function isDuration(value: unknown): boolean {
  return typeof value !== "string" || protoDuration.test(value);
}
