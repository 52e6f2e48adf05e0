import type { ReencryptionJob, ReencryptionRepo } from "../../../internal/biz/reencryption_job.js";
import type { SealedWrites } from "../../../internal/biz/sealed_store.js";
import type { DataKey } from "../../../internal/biz/kms/data_keys.js";
import { activeVersion } from "./key_rows.js";

const sameRun = (found: ReencryptionJob | undefined, read: ReencryptionJob) =>
  found?.state === "running" &&
  found.generation === read.generation &&
  found.targetVersion === read.targetVersion &&
  found.cursorId === read.cursorId;

/**
 * biz.ReencryptionRepo in memory, as data's: the job's row, each batch's
 * moves written to `store` with the cursor (all or nothing). `held` makes
 * the lock another instance's; `commits` counts the batches tried.
 */
export function fakeReencryptionRepo(store: SealedWrites, keys: { rows: DataKey[] }) {
  let row: ReencryptionJob | undefined;
  const put = (change: Partial<ReencryptionJob>) => {
    row = { ...row!, ...change, updatedAt: new Date() };
    return row;
  };
  const repo = {
    held: false as boolean,
    commits: 0,
    job: async () => row && { ...row },
    async start(opts) {
      if (row?.state === "running") return { job: { ...row }, started: false };
      const now = new Date();
      row = {
        state: "running",
        generation: (row?.generation ?? 0) + 1,
        belowVersion: opts.belowVersion,
        targetVersion: opts.targetVersion,
        cursorId: 0,
        batchSize: opts.batchSize,
        pauseMs: opts.pauseMs,
        rowsDone: 0n,
        rowsFailed: 0n,
        lastError: undefined,
        startedAt: now,
        updatedAt: now,
        finishedAt: undefined,
      };
      return { job: { ...row }, started: true };
    },
    async stop() {
      if (row?.state === "running") put({ state: "stopped" });
      return row && { ...row };
    },
    async commitBatch(batch) {
      repo.commits++;
      if (!sameRun(row, batch.read)) return { running: false, moved: 0 };
      const moved = await store.move(batch.moves);
      put({
        cursorId: batch.lastId,
        rowsDone: row!.rowsDone + BigInt(moved),
        rowsFailed: row!.rowsFailed + BigInt(batch.failed),
        lastError: batch.lastError ?? row!.lastError,
      });
      return { running: true, moved };
    },
    async finish(read) {
      if (!sameRun(row, read) || read.targetVersion !== activeVersion(keys)) return false;
      put({ state: "finished", finishedAt: new Date() });
      return true;
    },
    async retarget(read, targetVersion) {
      if (sameRun(row, read)) put({ targetVersion, cursorId: 0 });
    },
    async exclusively(work) {
      if (repo.held) return false;
      await work();
      return true;
    },
    busy: async () => false,
  } satisfies ReencryptionRepo & { held: boolean; commits: number };
  return repo;
}
