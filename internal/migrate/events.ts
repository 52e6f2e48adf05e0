import type { BlockerSnapshot } from "./lock_watch.js";

// What a run does, as it happens, for whoever watches from outside (a
// deploy's log shipper, the server's metrics): one plain object per event,
// JSON-ready, with nothing secret in it: no URL, no file's SQL, no consent
// reason; other sessions' statements only as reports show them (literals
// blanked, cut).

export type MigrationEvent =
  /** Planned under the migration lock: what will run. */
  | { event: "run_started"; command: string; steps: string[]; lockWaitMs: number }
  | { event: "backup_started" }
  | { event: "backup_finished"; ms: number; location?: string }
  | { event: "backup_failed"; ms: number; message: string }
  | { event: "migration_started"; name: string; direction: "up" | "down" }
  /** A statement refused by lock_timeout: who held the lock, and whether it is tried again. */
  | {
      event: "lock_refused";
      name: string;
      attempt: number;
      retryInMs?: number;
      blockers: BlockerSnapshot | undefined;
    }
  | {
      event: "migration_finished";
      name: string;
      direction: "up" | "down";
      ms: number;
      lockAttempts: number;
    }
  /**
   * Stopped by a signal after migration_started but before its first
   * statement (a read it makes first was cancelled): nothing of it ran, and
   * the report lists it as not started.
   */
  | { event: "migration_stopped"; name: string; direction: "up" | "down"; signal: string }
  | {
      event: "migration_failed";
      name: string;
      direction: "up" | "down";
      /** file:line of the statement that failed; the server's message stays in the report. */
      at: string;
      code?: string;
      lockAttempts: number;
      /** Ended by the signal (our cancel; a statement or retry not begun after it), not on its own. */
      stopped?: true;
    }
  /** A batched backfill (at its start, about each second, at its end): rows this run, rows it counted still to fill. */
  | {
      event: "backfill_progress";
      name: string;
      table: string;
      rows: number;
      remaining: number;
      rowsPerSecond: number;
      batches: number;
    }
  | {
      event: "backfill_finished";
      name: string;
      table: string;
      rows: number;
      batches: number;
      ms: number;
    }
  /**
   * The end: how many steps completed; the step that failed; the signal that
   * stopped it; or, when it stopped before any step (refused, no lock, the
   * backup failed), the error.
   */
  | {
      event: "run_finished";
      completed: number;
      failed?: string;
      interrupted?: string;
      error?: string;
      ms: number;
    };

/** Where events go; called synchronously, in order. */
export type EventSink = (e: MigrationEvent & { time: string }) => void;

/** Sends `e`, stamped, to `opts.events`; a sink that throws never stops a run. */
export function emit(opts: { events?: EventSink }, e: MigrationEvent): void {
  if (!opts.events) return;
  try {
    opts.events({ time: new Date().toISOString(), ...e });
  } catch {
    // A full disk or a closed pipe must not turn a migration into a failure.
  }
}
