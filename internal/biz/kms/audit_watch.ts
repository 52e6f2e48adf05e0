import type { Logger } from "../../pkg/log/logger.js";
import type { AuditChain, AuditCheckpoint } from "./audit_chain.js";
import {
  checkpointAnchor,
  type Anchor,
  type AuditTrail,
  type Verification,
} from "./audit_trail.js";
import { checkpointJson } from "./audit_checkpoint.js";

/** Where checkpoints go besides the log (a file, an HTTP endpoint). */
export interface CheckpointSink {
  /** For the log: "file", "http". */
  readonly name: string;
  write(cp: AuditCheckpoint): Promise<void>;
  /** The newest checkpoint the sink holds, when it can give one back. */
  newest?(): Promise<AuditCheckpoint | undefined>;
}

export interface AuditWatchPolicy {
  /** A checkpoint once the trail has grown by this many events... */
  everyEvents: number;
  /** ...and at least this often (each tick() looks; the KMS's runner sets how often). */
  intervalMs: number;
}

/** What the metrics report. */
export interface AuditWatchState {
  /** Undefined until the first check has run. */
  intact: boolean | undefined;
  problem: string;
  /** The newest event this process has checked. */
  checkedSeq: number;
  /** The event the newest checkpoint written by this process recorded (0: none yet). */
  checkpointSeq: number;
}

/**
 * Without a checkpoint to start from, start-up checks this many of the
 * newest events: bounded work whatever the trail's length.
 */
export const START_UP_TAIL = 1000;

/**
 * Watches the audit trail from inside the service: its first tick checks the
 * chain since the newest checkpoint a sink gives back (or its newest
 * events), then every tick that the head it saw last is still there and
 * that each new event follows it, and writes signed checkpoints of the head.
 * Once the chain disagrees it writes no more checkpoints, so the last good
 * one stays the newest where the database cannot reach, and stays broken
 * until the process restarts.
 */
export class AuditWatch {
  private known: Anchor | undefined;
  private written: AuditCheckpoint | undefined;
  private problem = "";
  private lastError = "";
  private running: Promise<void> | undefined;

  constructor(
    private readonly trail: AuditTrail,
    private readonly chain: AuditChain,
    private readonly sinks: CheckpointSink[],
    private readonly policy: AuditWatchPolicy,
    private readonly log: Logger,
  ) {}

  state(): AuditWatchState {
    return {
      intact: this.problem ? false : this.known ? true : undefined,
      problem: this.problem,
      checkedSeq: this.known?.seq ?? 0,
      checkpointSeq: this.written?.seq ?? 0,
    };
  }

  /** Resolves once the look under way (if any) has ended: after the last tick, before closing the pool. */
  async idle(): Promise<void> {
    await this.running;
  }

  /** One look (start-up's check when none has succeeded yet); never throws. */
  tick(): Promise<void> {
    this.running ??= this.look()
      .catch((err: unknown) => {
        // The database away: said once per new error, checked again next poll.
        const message = (err as Error).message;
        if (message !== this.lastError) {
          this.lastError = message;
          this.log.warn({ err: { message } }, "audit trail not checked");
        }
      })
      .finally(() => (this.running = undefined));
    return this.running;
  }

  private async look(): Promise<void> {
    if (this.problem) return;
    const v = this.known ? await this.trail.verifySince(this.known) : await this.startUp();
    if (!v) return;
    this.lastError = "";
    if (!v.intact) {
      this.problem = v.problem;
      this.log.error(
        { firstBadSeq: v.firstBadSeq, problem: v.problem },
        "audit trail broken: no more checkpoints will be written",
      );
      return;
    }
    this.known = {
      seq: v.lastSeq,
      hash: v.lastHash,
      recordedBy: `this service's check of ${new Date().toISOString()}`,
    };
    const due =
      !this.written ||
      v.lastSeq - this.written.seq >= this.policy.everyEvents ||
      Date.now() - this.written.at.getTime() >= this.policy.intervalMs;
    if (due) await this.checkpoint(this.known);
  }

  private async startUp(): Promise<Verification | undefined> {
    let newest: AuditCheckpoint | undefined;
    let from = "";
    for (const sink of this.sinks) {
      try {
        const found = await sink.newest?.();
        if (found) [newest, from] = [found, sink.name];
      } catch (err) {
        this.problem = `the newest checkpoint in the ${sink.name} sink cannot be read: ${(err as Error).message}`;
        this.log.error({ sink: sink.name, problem: this.problem }, "audit trail not checked");
        return undefined;
      }
    }
    if (newest && !this.chain.signed(newest)) {
      this.problem = `the newest checkpoint in the ${from} sink does not verify under this service's audit key`;
      this.log.error({ problem: this.problem }, "audit trail not checked");
      return undefined;
    }
    const v = newest
      ? await this.trail.verifySince(checkpointAnchor(newest))
      : await this.trail.verifyTail(START_UP_TAIL);
    if (v.intact) {
      this.log.info(
        { fromCheckpointSeq: newest?.seq, eventsChecked: v.eventsChecked, headSeq: v.lastSeq },
        newest
          ? "audit trail checked at start-up since the newest checkpoint"
          : "audit trail checked at start-up (its newest events; no checkpoint to compare)",
      );
    }
    return v;
  }

  private async checkpoint(head: Anchor): Promise<void> {
    const cp = this.chain.checkpoint(head, new Date());
    this.written = cp;
    this.log.info({ checkpoint: checkpointJson(cp) }, "audit checkpoint");
    for (const sink of this.sinks) {
      await sink.write(cp).catch((err: unknown) => {
        this.log.warn(
          { sink: sink.name, err: { message: (err as Error).message } },
          "audit checkpoint not written to its sink",
        );
      });
    }
  }
}
