import { readHeader } from "../pkg/kms/codec.js";
import type { FieldCipher } from "./kms/field_cipher.js";
import type { Slot, SlotHashes } from "./kms/index_keys.js";
import { openText, type SealedLayout } from "./sealed_store.js";

// `migrate verify --data`: every sealed value of a store opens under its
// row's context, and every blind index is what its value computes to under
// the index keys in use. Read only, batch by batch (keyset pagination), the
// plaintext held only while its indexes are computed: what leaves this
// module are counts, row ids, column names and problems, never a value.

/** A row's sealed values and blind indexes, as stored. */
export interface RowToVerify {
  id: number;
  /** users.index_epoch: the index keys' epoch the row's indexes were written under. */
  indexEpoch: number | null;
  /** Fields holding a ciphertext or an index (or both). */
  fields: Partial<
    Record<string, { ciphertext: Buffer | null; keyVersion: number | null; hashes: SlotHashes }>
  >;
}

/** The index keys in use when a batch was read (kms_index_keys, the same snapshot). */
export interface IndexKeysInUse {
  epoch: number;
  /** The slot the current key fills. */
  slot: Slot;
  /** A rotation's new key fills the other slot (its backfill may not have reached every row). */
  rotating: boolean;
}

/** A store read for verification: one read-only snapshot per batch. */
export interface SealedReader {
  readonly layout: SealedLayout;
  /** The table, for the counts. */
  readonly table: string;
  sealedColumn(field: string): string;
  indexColumn(field: string, slot: Slot): string;
  /** Up to `limit` rows after `afterId`, by ascending id, and the index keys in use then (undefined: none yet). */
  batch(
    afterId: number,
    limit: number,
  ): Promise<{ rows: RowToVerify[]; keys: IndexKeysInUse | undefined }>;
  /** Rows after `afterId`: the progress bar's total. */
  count(afterId: number): Promise<number>;
}

/** What the check needs of the KMS: open values, compute indexes under the keys in use. */
export type VerifyCipher = Pick<
  FieldCipher,
  "encryptField" | "decryptField" | "hashField" | "indexes" | "indexEpoch" | "reloadIndexKeys"
>;

/** Sealed values of one column under one data key version (the version column's). */
export interface SealedCount {
  table: string;
  column: string;
  keyVersion: number | null;
  ok: number;
  failed: number;
}

/**
 * Blind indexes of one column, by the row's index epoch. `pending`: the new
 * slot of a rotation not yet backfilled; `stale`: an index in a column no key
 * in use fills (a rotation's old column before it is cleared); `unchecked`:
 * its value did not open, so there is nothing to compute it from.
 */
export interface IndexCount {
  table: string;
  column: string;
  indexEpoch: number | null;
  ok: number;
  failed: number;
  pending: number;
  stale: number;
  unchecked: number;
}

/** One value or index that does not verify: where, and what is wrong; never the value. */
export interface VerifyFailure {
  table: string;
  id: number;
  column: string;
  problem: string;
}

export interface DataVerification {
  /** No failure among the rows checked. */
  ok: boolean;
  /** Every row after `fromId` was checked (false: interrupted; resume with --from lastId). */
  complete: boolean;
  fromId: number;
  /** The last row checked (fromId when none). */
  lastId: number;
  rows: number;
  sealed: SealedCount[];
  indexes: IndexCount[];
  /** The first failures (at most MAX_LISTED), by ascending id. */
  failures: VerifyFailure[];
  failuresTotal: number;
  seconds: number;
  rowsPerSecond: number;
}

export interface VerifyProgress {
  rows: number;
  lastId: number;
  failed: number;
}

/** Failures listed one by one; the counts hold them all. */
export const MAX_LISTED = 100;

/**
 * Checks every row after `fromId`, `batchSize` at a time; the next batch is
 * read while this one is checked (two in memory at most). Throws when it
 * cannot check (the database, the KMS not ready); a value that does not open
 * or an index that does not match is counted, not thrown. Stops after the
 * batch in hand once `signal` aborts (`complete` false).
 */
export async function verifySealedData(
  reader: SealedReader,
  cipher: VerifyCipher,
  opts: {
    fromId: number;
    batchSize: number;
    signal?: AbortSignal;
    onBatch?: (p: VerifyProgress) => void;
  },
): Promise<DataVerification> {
  const started = performance.now();
  const tally = newTally();
  let lastId = opts.fromId;
  let rows = 0;
  let complete = false;
  let next = reader.batch(lastId, opts.batchSize);
  for (;;) {
    const batch = await underKeysHeld(reader, cipher, await next, lastId, opts.batchSize);
    if (batch.rows.length === 0) {
      complete = true;
      break;
    }
    lastId = batch.rows.at(-1)!.id;
    next = reader.batch(lastId, opts.batchSize);
    // Unobserved until awaited: a failed read must not crash the process meanwhile.
    next.catch(() => undefined);
    for (const row of batch.rows) await checkRow(reader, cipher, batch.keys, row, tally);
    rows += batch.rows.length;
    opts.onBatch?.({ rows, lastId, failed: tally.failuresTotal });
    if (opts.signal?.aborted) break;
  }
  const seconds = (performance.now() - started) / 1000;
  return {
    ok: tally.failuresTotal === 0,
    complete,
    fromId: opts.fromId,
    lastId,
    rows,
    sealed: [...tally.sealed.values()],
    indexes: [...tally.indexes.values()],
    failures: tally.failures,
    failuresTotal: tally.failuresTotal,
    seconds,
    rowsPerSecond: seconds > 0 ? rows / seconds : 0,
  };
}

/**
 * `batch` if it was read under the index keys the cipher holds; else (a
 * rotation moved on since they were loaded) the keys reloaded and the same
 * rows read again. Only here, between batches, do the cipher's keys change:
 * never while a batch is being checked.
 */
async function underKeysHeld(
  reader: SealedReader,
  cipher: VerifyCipher,
  batch: Awaited<ReturnType<SealedReader["batch"]>>,
  afterId: number,
  limit: number,
): ReturnType<SealedReader["batch"]> {
  for (let attempt = 1; batch.keys && batch.keys.epoch !== cipher.indexEpoch(); attempt++) {
    if (attempt > 3)
      throw new Error("the index keys kept changing while the rows were read (a rotation?)");
    await cipher.reloadIndexKeys();
    batch = await reader.batch(afterId, limit);
  }
  return batch;
}

interface Tally {
  sealed: Map<string, SealedCount>;
  indexes: Map<string, IndexCount>;
  failures: VerifyFailure[];
  failuresTotal: number;
}

function newTally(): Tally {
  return { sealed: new Map(), indexes: new Map(), failures: [], failuresTotal: 0 };
}

function sealedCount(t: Tally, table: string, column: string, keyVersion: number | null) {
  const key = `${column}\0${keyVersion}`;
  let c = t.sealed.get(key);
  if (!c) t.sealed.set(key, (c = { table, column, keyVersion, ok: 0, failed: 0 }));
  return c;
}

function indexCount(t: Tally, table: string, column: string, indexEpoch: number | null) {
  const key = `${column}\0${indexEpoch}`;
  let c = t.indexes.get(key);
  if (!c) {
    c = { table, column, indexEpoch, ok: 0, failed: 0, pending: 0, stale: 0, unchecked: 0 };
    t.indexes.set(key, c);
  }
  return c;
}

function fail(t: Tally, failure: VerifyFailure) {
  t.failuresTotal++;
  if (t.failures.length < MAX_LISTED) t.failures.push(failure);
}

const SLOTS = [0, 1] as const;

async function checkRow(
  reader: SealedReader,
  cipher: VerifyCipher,
  keys: IndexKeysInUse | undefined,
  row: RowToVerify,
  t: Tally,
): Promise<void> {
  const { layout, table } = reader;
  for (const field of layout.fields) {
    const stored = row.fields[field];
    if (!stored) continue;
    const column = reader.sealedColumn(field);
    const indexOf = (slot: Slot) =>
      indexCount(t, table, reader.indexColumn(field, slot), row.indexEpoch);
    const failed = (column: string, problem: string) =>
      fail(t, { table, id: row.id, column, problem });

    if (!stored.ciphertext) {
      // An index without a value: nothing it could have been computed from.
      for (const slot of SLOTS) {
        if (stored.hashes[slot] === null) continue;
        indexOf(slot).failed++;
        failed(reader.indexColumn(field, slot), "an index without a value");
      }
      continue;
    }
    const count = sealedCount(t, table, column, stored.keyVersion);
    const text = await openText(cipher, layout, row.id, field, stored.ciphertext);
    if ("failure" in text) {
      count.failed++;
      failed(
        column,
        text.failure === "revoked"
          ? "sealed under a revoked data key"
          : "does not open under its row's context (altered, or another row's or column's value)",
      );
      for (const slot of SLOTS) if (stored.hashes[slot] !== null) indexOf(slot).unchecked++;
      continue;
    }
    // It opened, so its header is well formed.
    const version = readHeader(stored.ciphertext).version;
    if (version !== stored.keyVersion) {
      count.failed++;
      failed(
        column,
        `its key version column says ${stored.keyVersion ?? "nothing"}, the ciphertext ${version}`,
      );
    } else count.ok++;
    const expected = cipher.indexes(field, text.value).hashes;
    for (const slot of SLOTS) {
      const have = stored.hashes[slot];
      const want = expected[slot];
      if (want === null) {
        if (have !== null) indexOf(slot).stale++;
        continue;
      }
      const c = indexOf(slot);
      if (have === want) c.ok++;
      else if (have === null && keys?.rotating && slot !== keys.slot) c.pending++;
      else {
        c.failed++;
        failed(
          reader.indexColumn(field, slot),
          have === null ? "the index is missing" : "the index does not match its value",
        );
      }
    }
  }
}
