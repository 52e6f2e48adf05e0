import type { Logger } from "../pkg/log/logger.js";

/**
 * A named readiness check: resolves when ready, otherwise throws an Error
 * whose message is shown on /readyz, so it names the problem without
 * addresses, paths or internal messages ("unreachable", "pending: 000007_x").
 * Resolving with a note shows the note instead of "ok" and stays ready: a
 * degraded part that is no reason to stop serving.
 */
export type ReadinessCheck = () => Promise<void | string>;

export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
  /** Whether each check passed (a note in `checks` may still say "degraded"). */
  passed: Record<string, boolean>;
}

/** Runs every check at once: "ok" or its public reason, per name. */
export async function checkReadiness(checks: Record<string, ReadinessCheck>): Promise<Readiness> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      try {
        return [name, (await check()) || "ok", true] as const;
      } catch (err) {
        return [name, (err as Error).message || "failed", false] as const;
      }
    }),
  );
  return {
    ready: entries.every(([, , passed]) => passed),
    checks: Object.fromEntries(entries.map(([name, status]) => [name, status])),
    passed: Object.fromEntries(entries.map(([name, , passed]) => [name, passed])),
  };
}

// How often gRPC health follows readiness: a Kubernetes gRPC probe (period
// 10s by default) sees a change within one period.
const WATCH_MS = 2000;

/**
 * Re-runs the checks every couple of seconds and reports each change to
 * `onChange` (gRPC health) and to the log, so NOT_SERVING follows an outage
 * and SERVING its end without anyone asking; `state()` is the last round
 * (the metrics read it).
 */
export function watchReadiness(
  checks: Record<string, ReadinessCheck>,
  onChange: (ready: boolean) => void,
  log: Logger,
): { stop(): void; state(): Readiness | undefined } {
  let last: string | undefined;
  let latest: Readiness | undefined;
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const r = await checkReadiness(checks);
      latest = r;
      const summary = JSON.stringify(r.checks);
      if (summary !== last) {
        last = summary;
        onChange(r.ready);
        if (r.ready) log.info({ checks: r.checks }, "ready");
        else log.warn({ checks: r.checks }, "not ready");
      }
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), WATCH_MS);
  timer.unref();
  void tick();
  return { stop: () => clearInterval(timer), state: () => latest };
}
