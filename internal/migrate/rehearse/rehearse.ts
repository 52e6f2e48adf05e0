import type pg from "pg";
import { connect, disconnect } from "../connect.js";
import type { MigratorOptions } from "../options.js";
import { consented, gateOf, type Gate } from "../lint/consent.js";
import { prepare, type Prepared } from "../prepare.js";
import { replyTimeoutMs } from "../session.js";
import { readMigrations } from "../source.js";
import { readApplied } from "../state.js";
import {
  CopyStoppedError,
  RehearsalUnavailableError,
  withCopy,
  type SchemaSource,
} from "./copy.js";
import { traceStatement, type StatementTrace } from "./trace.js";
import { cancelBackend, cancelledBy } from "../cancel.js";

export { RehearsalUnavailableError, type SchemaSource };

/**
 * copy: an ephemeral database holding the target's schema (every file kind);
 * target: the target itself, all pending files in one transaction rolled
 * back (transactional files only).
 */
export type RehearsalMode = "copy" | "target";

export interface RehearsedMigration {
  name: string;
  file: string;
  transactional: boolean;
  statements: StatementTrace[];
  ms: number;
  failed: boolean;
  /** Stopped by a signal before it ran whole: neither failed nor rehearsed. */
  stopped?: true;
  /** The consent gate's verdict: `up` refuses the file when `gate.ok` is false, whatever the rehearsal shows. */
  gate: Gate;
}

export interface Rehearsal {
  mode: RehearsalMode;
  /** The copy's name and how its schema was made (copy mode). */
  database?: string;
  schemaFrom?: SchemaSource;
  migrations: RehearsedMigration[];
  /** The first failure, if any: the migrations after it were not rehearsed. */
  failed: boolean;
  /** The signal that stopped the rehearsal (SIGINT, SIGTERM): what follows was not rehearsed. */
  interrupted?: string;
  /** Pending files `up` would refuse for want of consent (rehearsed all the same, to show what they lock). */
  refused: string[];
  warnings: string[];
}

// The lock_timeout on the target: a rehearsal must never queue behind traffic
// (and have traffic queue behind it) for longer than this.
const TARGET_LOCK_TIMEOUT_MS = 500;

/**
 * Rehearses the pending `up` steps (the next `count`, or all) and traces
 * every statement. The target changes in no way: in copy mode it is only
 * read (and dumped); in target mode everything is rolled back.
 */
export async function rehearse(
  opts: MigratorOptions,
  {
    mode,
    count,
    allowOutOfOrder,
    phase,
    schemaFrom,
  }: {
    mode: RehearsalMode;
    count?: number;
    allowOutOfOrder?: boolean;
    /** up --phase: rehearse what that phase would apply (plan.ts). */
    phase?: "expand" | "contract";
    schemaFrom?: SchemaSource;
  },
  signal?: AbortSignal,
): Promise<Rehearsal> {
  const source = readMigrations(opts.dir);
  const target = await connect(opts.databaseUrl, opts.connectTimeoutMs, {
    replyTimeoutMs: replyTimeoutMs(opts, 1),
  });
  try {
    const p = await prepare(
      target,
      source,
      { kind: "up", count, allowOutOfOrder, ...(phase ? { phase } : {}) },
      opts,
    );
    const result: Rehearsal = {
      mode,
      migrations: [],
      failed: false,
      refused: [...p.consent.entries()].filter(([, c]) => !consented(c)).map(([s]) => s.name),
      warnings: p.warnings,
    };
    if (mode === "target") {
      const outside = p.steps.find((s) => !p.scripts.get(s)!.transactional);
      if (outside) {
        throw new RehearsalUnavailableError(
          `${outside.file} cannot run in a transaction, so it cannot be rehearsed on the target (BEGIN … ROLLBACK); ` +
            "rehearse on a copy instead (--rehearse, without =target)",
        );
      }
      await traced(opts, target, p, result, true, signal);
      return result;
    }
    if (p.steps.length === 0) return result;
    const applied = [
      ...(await readApplied(target)),
      ...p.adopt.map((f) => ({ name: f.name, runOn: new Date(), checksum: f.checksum })),
    ];
    const rehearsed = withCopy(
      opts,
      target,
      applied,
      source.migrations,
      schemaFrom,
      async (copy) => {
        result.database = copy.name;
        result.schemaFrom = copy.schemaFrom;
        const client = await connect(copy.url, opts.connectTimeoutMs);
        try {
          await traced({ ...opts, databaseUrl: copy.url }, client, p, result, false, signal);
        } finally {
          await disconnect(client, opts.connectTimeoutMs);
        }
        return result;
      },
      signal,
    );
    return await rehearsed.catch((err: unknown) => {
      // Stopped while the copy was filled: nothing was rehearsed.
      if (!(err instanceof CopyStoppedError)) throw err;
      result.interrupted = String(signal!.reason);
      return result;
    });
  } finally {
    await disconnect(target, opts.connectTimeoutMs);
  }
}

/**
 * Runs each step's statements, traced, on `client`: on the target all of
 * them in one transaction always rolled back; on the copy each
 * transactional file in its own committed transaction, so the next file
 * meets what it will meet in production.
 */
async function traced(
  opts: MigratorOptions,
  client: pg.Client,
  p: Prepared,
  result: Rehearsal,
  onTarget: boolean,
  signal: AbortSignal | undefined,
): Promise<void> {
  const observer = await connect(opts.databaseUrl, opts.connectTimeoutMs);
  const cancel = () => void cancelBackend(opts, client);
  const timeout = Math.max(0, Math.floor(opts.statementTimeoutMs));
  signal?.addEventListener("abort", cancel);
  try {
    if (onTarget) {
      // The locks taken here are real and held to the ROLLBACK: without a
      // statement bound nothing would limit how long production waits.
      if (timeout === 0) {
        throw new RehearsalUnavailableError(
          "--rehearse=target needs a statement timeout (statement_timeout is 0s): its locks are real and held until the rollback; set --statement-timeout, or rehearse on a copy",
        );
      }
      await client.query(
        `BEGIN; SET LOCAL lock_timeout = ${TARGET_LOCK_TIMEOUT_MS}; SET LOCAL statement_timeout = ${timeout}`,
      );
    } else {
      await client.query(`SET statement_timeout = ${timeout}`);
    }
    for (const s of p.steps) {
      if (signal?.aborted) break;
      const script = p.scripts.get(s)!;
      const inTransaction = script.transactional;
      const m: RehearsedMigration = {
        name: s.name,
        file: s.file,
        transactional: inTransaction,
        statements: [],
        ms: 0,
        failed: false,
        gate: gateOf(p.consent.get(s)!),
      };
      result.migrations.push(m);
      const started = performance.now();
      try {
        if (inTransaction && !onTarget) await client.query("BEGIN");
        for (const st of script.statements) {
          if (signal?.aborted) break;
          const t = await traceStatement(client, observer, st, inTransaction);
          m.statements.push(t);
          if (t.error !== undefined && cancelledBy({ code: t.code }, signal, client)) {
            // Our cancel, not the file's fault: a stop, said as one.
            t.error = `cancelled by ${String(signal!.reason)}`;
            break;
          }
          if (t.error !== undefined) {
            m.failed = result.failed = true;
            break;
          }
        }
        // A statement that failed on its own as the signal came stays a failure.
        if (signal?.aborted && !m.failed) m.stopped = true;
        if (inTransaction && !onTarget)
          await client.query(m.failed || m.stopped ? "ROLLBACK" : "COMMIT");
      } catch (err) {
        // Our cancel landed on a lock snapshot or the COMMIT instead: still
        // a stop (the copy is dropped whatever it holds). Any other error
        // is the rehearsal's, as before.
        if (!cancelledBy(err, signal, client)) throw err;
        m.stopped = true;
        if (inTransaction && !onTarget) await client.query("ROLLBACK").catch(() => undefined);
      }
      m.ms = Math.round(performance.now() - started);
      if (m.failed || m.stopped) break;
    }
    if (signal?.aborted) result.interrupted = String(signal.reason);
  } finally {
    signal?.removeEventListener("abort", cancel);
    if (onTarget) await client.query("ROLLBACK").catch(() => undefined);
    await disconnect(observer, opts.connectTimeoutMs);
  }
}
