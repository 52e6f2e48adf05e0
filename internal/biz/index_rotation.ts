import type { Logger } from "../pkg/log/logger.js";
import { background, type Context } from "./context.js";
import type { FieldCipher } from "./field_cipher.js";
import type { Slot } from "./index_keys.js";
import {
  jobStatus,
  jobWorker,
  pauseBetweenBatches,
  type BatchPolicy,
  type JobProgress,
  type JobRows,
  type JobStatus,
  type Worker,
} from "./job_worker.js";
import {
  failureNote,
  IndexCollisionError,
  openText,
  otherSlot,
  type IndexFill,
  type SealedStore,
} from "./sealed_store.js";

/**
 * backfill: writes fill both index columns while the job fills the new one
 * for older rows; clear: the new key is the key (the old one is deleted) and
 * the job empties the old column; done.
 */
export type IndexRotationPhase = "backfill" | "clear" | "done";
/** failed: rows whose values cannot be read have no index under the new key; a new RotateIndexKey resumes. */
export type IndexRotationState = "running" | "failed" | "finished";

/** The index-key rotation as stored: one for the whole deployment. */
export interface IndexRotationJob extends JobProgress {
  phase: IndexRotationPhase;
  state: IndexRotationState;
  /** The slot the new key fills. */
  toSlot: Slot;
  /** The index keys' epoch this phase works under. */
  epoch: number;
  cursorId: number;
  batchSize: number;
  pauseMs: number;
  switchedAt: Date | undefined;
}

/** Storage of the rotation's row and the index keys, implemented in internal/data beside its store's writes. */
export interface IndexRotationRepo extends JobRows<IndexRotationJob> {
  /**
   * One transaction, ordered against every write of an index: unless a
   * rotation is under way, stores the key `make(rootKeyId)` wraps as the
   * next index key (writes fill both columns from then on) and starts the
   * job; a failed job resumes from its first row. Audited; announced.
   */
  begin(
    make: (rootKeyId: string | undefined) => Buffer,
    policy: BatchPolicy,
    ctx?: Context,
  ): Promise<{ job: IndexRotationJob; started: boolean }>;
  /**
   * One transaction, while the job is as `read`: the fills written
   * (SealedWrites.fill: a user's write in between filled both columns
   * itself), the cursor moved to `lastId`, counts added.
   */
  commitFill(batch: {
    read: IndexRotationJob;
    lastId: number;
    fills: IndexFill[];
    failed: number;
    lastError: string | undefined;
  }): Promise<{ running: boolean }>;
  /**
   * The final step, ordered against every write of an index: when no row
   * lacks its index under the next key, the next key replaces the current
   * one (which is deleted), and the job goes on to empty the old column
   * (audited, announced); otherwise the job fails, saying how many rows.
   */
  switchKeys(read: IndexRotationJob): Promise<{ switched: boolean; missing: bigint }>;
  /** Empties the old slot's columns of the next `limit` rows after the cursor; finishes the job when none is left. */
  clearBatch(read: IndexRotationJob): Promise<{ running: boolean; done: boolean }>;
  /** Marks the job, still as `read`, failed with `message` (the operator's to resolve). */
  fail(read: IndexRotationJob, message: string): Promise<void>;
}

export type IndexRotationStatus = JobStatus<IndexRotationJob>;

/**
 * Replaces the blind-index key online. Every lookup answers the same user
 * before, during and after, and uniqueness holds throughout: while both
 * keys exist each write fills both index columns and lookups consult both
 * (the database refuses a write made with the keys of another phase); the
 * job fills the new column for older rows with a cursor committed with each
 * batch (one worker in the deployment, resuming after a crash); the switch
 * happens only once every row is indexed under the new key.
 */
export class IndexRotation {
  /** This instance's worker on the job (see jobWorker). */
  readonly worker: Worker;

  constructor(
    private readonly repo: IndexRotationRepo,
    private readonly store: SealedStore,
    private readonly cipher: FieldCipher,
    private readonly newKey: (rootKeyId: string | undefined) => Buffer,
    private readonly defaults: BatchPolicy,
    private readonly log: Logger,
  ) {
    this.worker = jobWorker(repo, () => this.batches());
  }

  /** Begins a rotation, or answers the one under way (`started` false); a failed one resumes. */
  async start(
    opts: { batchSize?: number; pauseMs?: number },
    ctx: Context = background,
  ): Promise<{ started: boolean; status: IndexRotationStatus }> {
    const { job, started } = await this.repo.begin(
      this.newKey,
      {
        batchSize: opts.batchSize || this.defaults.batchSize,
        pauseMs: opts.pauseMs ?? this.defaults.pauseMs,
      },
      ctx,
    );
    if (started) {
      await this.cipher.reloadIndexKeys();
      this.worker.wake();
      this.log.info({ epoch: job.epoch, slot: job.toSlot }, "index-key rotation started");
    }
    return { started, status: await this.describe(job) };
  }

  async status(): Promise<IndexRotationStatus> {
    return this.describe(await this.repo.job());
  }

  private async batches(): Promise<void> {
    while (!this.worker.signal.aborted) {
      const job = await this.repo.job();
      if (job?.state !== "running") return;
      if (!(await this.step(job))) return;
      await pauseBetweenBatches({
        pauseMs: job.pauseMs,
        busy: () => this.repo.busy(),
        current: async () => (await this.repo.job())?.state === "running",
        signal: this.worker.signal,
      });
    }
  }

  // One batch of the job's phase; false when there is nothing more to do now.
  private async step(job: IndexRotationJob): Promise<boolean> {
    if (job.phase === "clear") {
      const { running, done } = await this.repo.clearBatch(job);
      if (done) this.log.info("index-key rotation finished: the old index column is empty");
      return running && !done;
    }
    if (job.phase !== "backfill") return false;
    // The new key comes from the keys this instance holds: those of the job's epoch.
    if (this.cipher.indexEpoch() !== job.epoch) await this.cipher.reloadIndexKeys();
    if (this.cipher.indexEpoch() !== job.epoch) {
      throw new Error(`the index keys are at another epoch than the rotation's (${job.epoch})`);
    }
    const fromSlot = otherSlot(job.toSlot);
    const rows = await this.store.unindexed(fromSlot, job.cursorId, job.batchSize);
    if (rows.length === 0) {
      const { switched, missing } = await this.repo.switchKeys(job);
      if (!switched) {
        this.log.warn({ missing: String(missing) }, "index-key rotation stopped: rows unindexed");
        return false;
      }
      await this.cipher.reloadIndexKeys();
      this.log.info("index key replaced: the old key is deleted");
      return true;
    }
    let failed = 0;
    let lastError: string | undefined;
    const fills: IndexFill[] = [];
    const { layout } = this.store;
    for (const row of rows) {
      const fill: IndexFill = { id: row.id, fields: {} };
      for (const f of layout.fields) {
        const value = row.fields[f];
        if (!value) continue;
        const text = await openText(this.cipher, layout, row.id, f, value.ciphertext);
        // A value that cannot be read cannot be indexed: counted, and the
        // switch waits until it is rewritten or deleted.
        if ("failure" in text) {
          lastError = failureNote(layout, row.id, f, text.error);
          continue;
        }
        const hash = this.cipher.indexes(f, text.value).hashes[job.toSlot];
        if (hash) fill.fields[f] = { oldHash: value.oldHash, hash };
      }
      if (Object.keys(fill.fields).length < Object.keys(row.fields).length) failed++;
      fills.push(fill);
    }
    try {
      const { running } = await this.repo.commitFill({
        read: job,
        lastId: rows.at(-1)!.id,
        fills,
        failed,
        lastError,
      });
      return running;
    } catch (err) {
      if (!(err instanceof IndexCollisionError)) throw err;
      // Retrying would fail the same way for ever: the operator's to resolve.
      const first = rows[0]!.id;
      const last = rows.at(-1)!.id;
      await this.repo.fail(
        job,
        `a value of ${layout.noun}s ${first}..${last} indexes under the new key like another ${layout.noun}'s (duplicates the old index did not catch, written outside the service): resolve them, then RotateIndexKey again to resume`,
      );
      this.log.warn({ first, last }, "index-key rotation stopped: duplicate values");
      return false;
    }
  }

  private describe(job: IndexRotationJob | undefined): Promise<IndexRotationStatus> {
    return jobStatus(job, (j) => {
      const from = otherSlot(j.toSlot);
      if (j.phase === "done") return 0n;
      return j.phase === "backfill"
        ? this.store.countUnindexed(from, j.cursorId)
        : this.store.countIndexed(from, j.cursorId);
    });
  }
}
