// Longer than the other use cases (about 260 lines) on purpose: the
// pipelined batch loop and the re-seal with its retries are one algorithm,
// read top to bottom; the job's row and port are in reencryption_job.ts.
import type { Logger } from "../pkg/log/logger.js";
import type { FieldCipher } from "./kms/field_cipher.js";
import { background, type Context } from "./context.js";
import { MAX_POSITION } from "./paging.js";
import {
  jobStatus,
  jobWorker,
  pauseBetweenBatches,
  type BatchPolicy,
  type Worker,
} from "./job_worker.js";
import type { ReencryptionJob, ReencryptionRepo, ReencryptionStatus } from "./reencryption_job.js";
import type { DataKeyRepo } from "./kms/data_keys.js";
import { kmsErrors } from "./kms/errors.js";
import {
  failureNote,
  KEY_CHANGE_ATTEMPTS,
  resealValue,
  RevokedKeyWriteError,
  type RowMove,
  type RowToMove,
  type SealedStore,
} from "./sealed_store.js";

/** The data keys as the job reads them: which is active, which versions still move. */
export type KeyVersions = Pick<DataKeyRepo, "active" | "list">;

/** One step of the worker, planned from the job as read (see Reencryption.plan). */
type Step =
  | { kind: "idle" }
  | { kind: "retarget"; job: ReencryptionJob; target: number }
  | { kind: "finish"; job: ReencryptionJob }
  | {
      kind: "commit";
      job: ReencryptionJob;
      rows: RowToMove[];
      versions: number[];
      lastId: number;
      moves: RowMove[];
      failed: number;
      lastError: string | undefined;
    };

/**
 * Moves every stored value under an older data key to the active key, in
 * batches, so that old keys stop protecting anything and can be retired.
 * One worker in the deployment at a time (the repository's lock); its
 * cursor moves with each batch's rows in one transaction, so a crash or a
 * restart resumes where it stopped; a value a user changes meanwhile keeps
 * the user's write.
 */
export class Reencryption {
  /** This instance's worker on the job (see jobWorker). */
  readonly worker: Worker;

  constructor(
    private readonly repo: ReencryptionRepo,
    private readonly store: SealedStore,
    private readonly keys: KeyVersions,
    private readonly cipher: FieldCipher,
    private readonly defaults: BatchPolicy,
    private readonly log: Logger,
  ) {
    this.worker = jobWorker(repo, () => this.batches());
  }

  async start(
    opts: {
      belowVersion?: number;
      batchSize?: number;
      pauseMs?: number;
    },
    ctx: Context = background,
  ): Promise<ReencryptionStatus> {
    const active = await this.keys.active();
    if (!active) throw kmsErrors.notReady();
    const { job, started } = await this.repo.start(
      {
        belowVersion: opts.belowVersion,
        targetVersion: active.version,
        batchSize: opts.batchSize || this.defaults.batchSize,
        pauseMs: opts.pauseMs ?? this.defaults.pauseMs,
      },
      ctx,
    );
    if (!started) throw kmsErrors.reencryptionRunning();
    this.worker.wake();
    this.log.info(
      { below: job.belowVersion, target: job.targetVersion, batch: job.batchSize },
      "re-encryption started",
    );
    return this.describe(job);
  }

  async stop(ctx: Context = background): Promise<ReencryptionStatus> {
    const job = await this.repo.stop(ctx);
    if (job?.state === "stopped")
      this.log.info({ done: String(job.rowsDone) }, "re-encryption stopped");
    return this.describe(job);
  }

  async status(): Promise<ReencryptionStatus> {
    return this.describe(await this.repo.job());
  }

  /**
   * Batch after batch until the job ends, stops or this instance stops.
   * While a batch commits, the next one is read and sealed (its rows lie past
   * this batch's): the database's work and ours overlap. A step planned ahead
   * from a job that has changed meanwhile (stopped, started anew, another
   * pass) writes nothing: every step is conditional on the job as read.
   */
  private async batches(): Promise<void> {
    let ahead: Promise<Step> | undefined;
    try {
      while (!this.worker.signal.aborted) {
        const step = await (ahead ?? this.plan(await this.repo.job()));
        ahead = undefined;
        if (step.kind === "commit") {
          ahead = this.plan({ ...step.job, cursorId: step.lastId });
          // Awaited (and its failure thrown) when its turn comes.
          ahead.catch(() => undefined);
        }
        if (!(await this.apply(step))) return;
        await this.pause();
      }
    } finally {
      await ahead?.catch(() => undefined);
    }
  }

  // What to do next for `job`, read and sealed but not yet written.
  private async plan(job: ReencryptionJob | undefined): Promise<Step> {
    if (job?.state !== "running") return { kind: "idle" };
    const active = await this.keys.active();
    if (!active) throw kmsErrors.notReady();
    // Rotated since this pass began: the rows behind the cursor are under an
    // older key now. Start over towards the new one.
    if (active.version !== job.targetVersion)
      return { kind: "retarget", job, target: active.version };
    const versions = await this.versionsToMove(job);
    const rows = await this.store.rowsUnder(versions, job.cursorId, job.batchSize);
    if (rows.length === 0) return { kind: "finish", job };
    return {
      kind: "commit",
      job,
      rows,
      versions,
      lastId: rows.at(-1)!.id,
      ...(await this.reseal(rows, versions)),
    };
  }

  // Writes a step; false when there is nothing more to do now.
  private async apply(step: Step): Promise<boolean> {
    switch (step.kind) {
      case "idle":
        return false;
      case "retarget":
        await this.repo.retarget(step.job, step.target);
        this.log.info({ target: step.target }, "re-encryption: key rotated, new pass");
        return true;
      case "finish":
        // Not finished when the key rotated meanwhile: the next step sees it.
        if (!(await this.repo.finish(step.job))) return true;
        this.log.info({ target: step.job.targetVersion }, "re-encryption finished");
        return false;
      case "commit":
        return this.commit(step);
    }
  }

  private async commit(step: Extract<Step, { kind: "commit" }>): Promise<boolean> {
    let { moves, failed, lastError } = step;
    for (let attempt = 1; ; attempt++) {
      // Sealed under a key this instance still took for the active one (its
      // news of a rotation late): moving values there would leave them
      // behind the cursor under an older key. Seal again.
      const target = step.job.targetVersion;
      if (
        moves.some((m) =>
          Object.values(m.fields).some((f) => f !== undefined && f.keyVersion !== target),
        )
      ) {
        if (attempt === KEY_CHANGE_ATTEMPTS) {
          throw new Error(`values still seal under a key other than the job's target ${target}`);
        }
        this.cipher.reloadKeys();
        ({ moves, failed, lastError } = await this.reseal(step.rows, step.versions));
        continue;
      }
      try {
        const { running } = await this.repo.commitBatch({
          read: step.job,
          lastId: step.lastId,
          moves,
          failed,
          lastError,
        });
        return running;
      } catch (err) {
        // The active key was revoked since this instance cached it: the
        // database refused the batch; seal it again under the new one.
        if (!(err instanceof RevokedKeyWriteError) || attempt === KEY_CHANGE_ATTEMPTS) throw err;
        this.cipher.reloadKeys();
        ({ moves, failed, lastError } = await this.reseal(step.rows, step.versions));
      }
    }
  }

  private async reseal(rows: RowToMove[], versions: number[]) {
    const { layout } = this.store;
    const moves: RowMove[] = [];
    let failed = 0;
    let lastError: string | undefined;
    for (const row of rows) {
      const move: RowMove = { id: row.id, fields: {} };
      let rowFailed = false;
      for (const f of layout.fields) {
        const value = row.fields[f];
        if (!value || !versions.includes(value.keyVersion)) continue;
        const sealed = await resealValue(this.cipher, layout, row.id, f, value.ciphertext);
        // A value that cannot be read cannot move: counted, never guessed
        // at; the row's other values still move.
        if ("failure" in sealed) {
          rowFailed = true;
          lastError = failureNote(layout, row.id, f, sealed.error);
        } else move.fields[f] = { old: value.ciphertext, ...sealed.value };
      }
      if (rowFailed) failed++;
      moves.push(move);
    }
    return { moves, failed, lastError };
  }

  // Between batches; cut short when the job is stopped or started anew.
  private async pause(): Promise<void> {
    const job = await this.repo.job();
    await pauseBetweenBatches({
      pauseMs: job?.pauseMs ?? 0,
      busy: () => this.repo.busy(),
      current: async () => {
        const now = await this.repo.job();
        return now?.state === "running" && now.generation === job?.generation;
      },
      signal: this.worker.signal,
    });
  }

  // Every version below the job's bound (all but the active key when
  // unbounded), except revoked ones: their values can never be read.
  private async versionsToMove(job: ReencryptionJob): Promise<number[]> {
    const all = await this.keys.list({ limit: MAX_POSITION });
    return all
      .filter((k) => k.status === "inactive" || k.status === "expired")
      .filter((k) => job.belowVersion === undefined || k.version < job.belowVersion)
      .map((k) => k.version);
  }

  private describe(job: ReencryptionJob | undefined): Promise<ReencryptionStatus> {
    return jobStatus(job, async (j) =>
      j.state === "finished" ? 0n : this.store.countUnder(await this.versionsToMove(j), j.cursorId),
    );
  }
}
