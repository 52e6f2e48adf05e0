import type { Logger } from "../pkg/log/logger.js";
import { background, type Context } from "./context.js";
import type { FieldCipher } from "./kms/field_cipher.js";
import {
  jobStatus,
  jobWorker,
  pauseBetweenBatches,
  type BatchPolicy,
  type Worker,
} from "./job_worker.js";
import type {
  IndexRotationJob,
  IndexRotationRepo,
  IndexRotationStatus,
} from "./index_rotation_job.js";
import {
  failureNote,
  IndexCollisionError,
  openText,
  otherSlot,
  type IndexFill,
  type SealedStore,
} from "./sealed_store.js";

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
