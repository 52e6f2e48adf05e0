import { randomBytes } from "node:crypto";
import type {
  IndexRotationJob,
  IndexRotationRepo,
} from "../../../internal/biz/index_rotation_job.js";
import { kmsErrors } from "../../../internal/biz/kms/errors.js";
import { otherSlot, type SealedWrites } from "../../../internal/biz/sealed_store.js";
import type { FakeIndexKeys } from "./field_cipher.js";

const samePlace = (found: IndexRotationJob | undefined, read: IndexRotationJob) =>
  found?.state === "running" &&
  found.phase === read.phase &&
  found.epoch === read.epoch &&
  found.cursorId === read.cursorId;

/**
 * biz.IndexRotationRepo in memory, as data's: the job's row and the index
 * keys (`index`, which the fake field cipher loads), each batch written to
 * `store` with the cursor. The new key `begin` is given is kept as made:
 * the fakes store index keys unwrapped.
 */
export function fakeIndexRotationRepo(store: SealedWrites, index: FakeIndexKeys) {
  let row: IndexRotationJob | undefined;
  const put = (change: Partial<IndexRotationJob>) => {
    row = { ...row!, ...change, updatedAt: new Date() };
    return row;
  };
  const repo = {
    held: false as boolean,
    job: async () => row && { ...row },
    async begin(make, policy) {
      if (row?.state === "running") return { job: { ...row }, started: false };
      const missing = await store.missingIndexes();
      if (missing.length > 0) throw kmsErrors.indexesNotReady(missing);
      if (row?.state === "failed") {
        put({ state: "running", cursorId: 0, rowsFailed: 0n, lastError: undefined, ...policy });
        return { job: { ...row! }, started: true };
      }
      const made = make(undefined);
      const next = made.length === 32 ? made : randomBytes(32);
      const epoch = index.current.epoch + 1;
      index.current = { ...index.current, next, epoch };
      const now = new Date();
      row = {
        phase: "backfill",
        state: "running",
        toSlot: otherSlot(index.current.slot),
        epoch,
        cursorId: 0,
        ...policy,
        rowsDone: 0n,
        rowsFailed: 0n,
        lastError: undefined,
        startedAt: now,
        updatedAt: now,
        switchedAt: undefined,
        finishedAt: undefined,
      };
      return { job: { ...row }, started: true };
    },
    async commitFill(batch) {
      if (!samePlace(row, batch.read)) return { running: false };
      const filled = await store.fill(batch.read.toSlot, batch.read.epoch, batch.fills);
      put({
        cursorId: batch.lastId,
        rowsDone: row!.rowsDone + BigInt(filled),
        rowsFailed: row!.rowsFailed + BigInt(batch.failed),
        lastError: batch.lastError ?? row!.lastError,
      });
      return { running: true };
    },
    async switchKeys(read) {
      if (!samePlace(row, read)) return { switched: false, missing: 0n };
      const n = await store.countUnindexed(otherSlot(read.toSlot), 0);
      if (n > 0n) {
        put({ state: "failed", lastError: `${n} user(s) have a value that could not be indexed` });
        return { switched: false, missing: n };
      }
      const epoch = index.current.epoch + 1;
      index.current = { epoch, slot: read.toSlot, key: index.current.next!, next: undefined };
      put({ phase: "clear", epoch, cursorId: 0, switchedAt: new Date() });
      return { switched: true, missing: 0n };
    },
    async clearBatch(read) {
      if (!samePlace(row, read)) return { running: false, done: false };
      const ids = await store.clear(
        otherSlot(read.toSlot),
        read.epoch,
        read.cursorId,
        read.batchSize,
      );
      if (ids.length === 0) {
        put({ phase: "done", state: "finished", finishedAt: new Date() });
        return { running: true, done: true };
      }
      put({ cursorId: Math.max(...ids) });
      return { running: true, done: false };
    },
    async fail(read, message) {
      if (samePlace(row, read)) put({ state: "failed", lastError: message });
    },
    async exclusively(work) {
      if (repo.held) return false;
      await work();
      return true;
    },
    busy: async () => false,
  } satisfies IndexRotationRepo & { held: boolean };
  return repo;
}
