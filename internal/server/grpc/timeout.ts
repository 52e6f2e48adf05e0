// grpc-timeout: at most eight ASCII digits, then a unit.
const TIMEOUT = /^(\d{1,8})([HMSmun])$/;
const unitMs: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/**
 * The deadline a grpc-timeout header sets (ms since the epoch), undefined
 * without one, null when it is not a valid timeout.
 */
export function deadlineOf(value: string | undefined, now: number): number | undefined | null {
  if (value === undefined) return undefined;
  const m = TIMEOUT.exec(value);
  return m ? now + Number(m[1]) * unitMs[m[2]!]! : null;
}
