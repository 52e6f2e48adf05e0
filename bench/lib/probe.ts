import { setTimeout as wait } from "node:timers/promises";
import pg from "pg";

// What the application sees while a schema change runs: a probe on a
// connection of its own doing point writes and reads of one table, and a
// sampler on another reading pg_locks for the locks the migrator's session
// holds on it. Figures are kept per phase (the label set when an attempt or
// a lock began).

/** Probe statements wait at most this long; a stall longer than it is a chain of timeouts. */
export const PROBE_TIMEOUT_MS = 1000;
/** Between two rounds of the probe (a write and a read). */
const PROBE_PAUSE_MS = 5;
/** Between two pg_locks samples. */
export const SAMPLE_MS = 10;
// Table lock modes that a plain UPDATE's ROW EXCLUSIVE waits for.
const CONFLICTING = ["ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"];
const TIMEOUT = "57014";

export interface PhaseFigures {
  /** Longest time from a probe statement's start to the first answer of its kind (timeouts chained). */
  stallMs: number;
  /** Errors by message. */
  errors: Map<string, number>;
  /** First and last error, ms on performance.now()'s clock. */
  errorSpan?: { first: number; last: number };
  /** Longest span a conflicting lock was seen held (first sample seeing it to the first not). */
  lockMs: number;
  lockMode?: string;
  probes: number;
}

export interface Probe {
  /** Attempts and locks beginning from now count to `label`. */
  phase(label: string): void;
  /** The column the application's read names (a deploy switches it). */
  release(column: string): void;
  /** Stops both loops; the figures by phase, and the sampler's mean interval. */
  stop(): Promise<{ phases: Map<string, PhaseFigures>; sampleMs: number }>;
}

/**
 * Starts probing `table` (ids 1..rows), reading `column`; locks are those of
 * sessions whose application_name is `migrator`.
 */
export async function startProbe(
  url: string,
  opts: { table: string; rows: number; column: string; migrator: string },
): Promise<Probe> {
  const app = new pg.Client({ connectionString: url, application_name: "bench-probe" });
  const sampler = new pg.Client({ connectionString: url, application_name: "bench-sampler" });
  await app.connect();
  await sampler.connect();
  await app.query(`SET statement_timeout = ${PROBE_TIMEOUT_MS}`);
  const oid = (
    await sampler.query<{ oid: number }>("SELECT $1::regclass::oid AS oid", [opts.table])
  ).rows[0]!.oid;
  const phases = new Map<string, PhaseFigures>();
  let label = "start";
  let column = opts.column;
  let running = true;
  const figures = (l: string) => {
    let f = phases.get(l);
    if (!f) phases.set(l, (f = { stallMs: 0, errors: new Map(), lockMs: 0, probes: 0 }));
    return f;
  };

  // A kind's stall runs from its first unanswered attempt to the next answer:
  // a statement cancelled by its timeout is sent again, on the same row, as
  // an application retries a write (so a row locked till a commit shows
  // the whole wait).
  const pending: Record<string, { since: number; label: string; id: number } | undefined> = {};
  const attempt = async (kind: string, sql: string) => {
    const started = performance.now();
    const p = (pending[kind] ??= {
      since: started,
      label,
      id: 1 + Math.floor(Math.random() * opts.rows),
    });
    figures(label).probes++;
    let failure: { code?: string; message: string } | undefined;
    try {
      await app.query(sql, [p.id]);
    } catch (err) {
      failure = err as { code?: string; message: string };
    }
    const now = performance.now();
    const f = figures(p.label);
    if (failure) {
      f.errors.set(failure.message, (f.errors.get(failure.message) ?? 0) + 1);
      f.errorSpan = { first: f.errorSpan?.first ?? now, last: now };
      if (failure.code === TIMEOUT) return;
    }
    f.stallMs = Math.max(f.stallMs, now - p.since);
    pending[kind] = undefined;
  };
  const probing = (async () => {
    while (running) {
      await attempt("write", `UPDATE ${opts.table} SET updated_at = now() WHERE id = $1`);
      await attempt("read", `SELECT ${column} FROM ${opts.table} WHERE id = $1`);
      await wait(PROBE_PAUSE_MS);
    }
  })();

  let samples = 0;
  const released = (held: { since: number; label: string; mode: string }, at: number) => {
    const f = figures(held.label);
    if (at - held.since > f.lockMs)
      Object.assign(f, { lockMs: at - held.since, lockMode: held.mode });
  };
  const sampling = (async () => {
    let held: { since: number; label: string; mode: string } | undefined;
    const first = performance.now();
    while (running) {
      const started = performance.now();
      // Table locks only: a relation's extension lock is an ExclusiveLock on the same oid.
      const { rows } = await sampler.query<{ mode: string }>(
        `SELECT l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'relation' AND l.relation = $1 AND l.granted AND a.application_name = $2 AND l.mode = ANY($3)`,
        [oid, opts.migrator, CONFLICTING],
      );
      samples++;
      const modes = rows.map((r) => r.mode).sort((a, b) => rank(b) - rank(a));
      if (modes.length > 0) {
        held ??= { since: started, label, mode: modes[0]! };
        if (rank(modes[0]!) > rank(held.mode)) held.mode = modes[0]!;
      } else if (held) {
        released(held, started);
        held = undefined;
      }
      await wait(Math.max(0, SAMPLE_MS - (performance.now() - started)));
    }
    if (held) released(held, performance.now());
    return (performance.now() - first) / Math.max(1, samples);
  })();

  return {
    phase: (l) => void (label = l),
    release: (c) => void (column = c),
    async stop() {
      running = false;
      await probing;
      const sampleMs = await sampling;
      // An attempt still unanswered at the end counts as a stall until now.
      for (const p of Object.values(pending))
        if (p) {
          const f = figures(p.label);
          f.stallMs = Math.max(f.stallMs, performance.now() - p.since);
        }
      await app.end();
      await sampler.end();
      return { phases, sampleMs };
    },
  };
}

const rank = (mode: string) => CONFLICTING.indexOf(mode);
