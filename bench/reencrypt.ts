import { Writable } from "node:stream";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import { KmsService, ReencryptionState } from "../api/kms/v1/kms_pb.js";
import { UserService, View } from "../api/user/v1/user_pb.js";
import { wireApp } from "../cmd/server/wire.js";
import { PII_FIELDS } from "../internal/biz/user.js";
import { parseConfig } from "../internal/conf/load.js";
import { createLogger } from "../internal/pkg/log/logger.js";
import { one } from "./lib/db.js";
import { ACTIVE, OLD_VERSIONS, person, seedUsers } from "./lib/seed.js";

/** Rows per job batch and per batch of the limit's UPDATE (the config default). */
const BATCH = 500;
/**
 * How often GetReencryptionStatus is asked while the job runs: rarely, as
 * each call counts the rows still to move (about 0.4 s of database time at
 * the start of 100 000 here), which would slow the job it watches.
 */
const POLL_MS = 2000;
/** A job whose rows_done stays put this long is given up as stuck. */
const STALL_MS = 60_000;

export interface ReencryptResult {
  users: number;
  /** Where the setup's time went (ms): sealing and indexing, INSERTs, VACUUM ANALYZE, the copy. */
  setup: { sealMs: number; insertMs: number; vacuumMs: number; copyMs: number };
  ours: {
    rowsDone: number;
    rowsFailed: number;
    seconds: number;
    perSecond: number;
    /** When this process saw FINISHED, from the start call (polled every POLL_MS). */
    observedSeconds: number;
  };
  limit: { rows: number; seconds: number; perSecond: number };
  /** Empty when the run is valid: what the checks after each part found wrong. */
  invalid: string[];
}

/**
 * The re-encryption job's rows per second against the limit: a plain
 * batched UPDATE of the same columns with precomputed values.
 *
 * `users` rows are written straight into a fresh database with SQL (CreateUser
 * would spend minutes in scrypt), but with real values: ciphertexts from the
 * service's own field cipher bound to their row and field as the user
 * repository binds them, their blind indexes, key version columns and
 * key_versions, one real scrypt hash. A third is sealed under each of data
 * keys 1, 2 and 3, and the key is rotated once more, so every row has to
 * move to key 4. The database is then copied (CREATE DATABASE ... TEMPLATE):
 * the job runs in the service (wireApp, auth off) on the first, started and
 * watched over gRPC; the limit runs on the copy, from this process, with the
 * ciphertexts the job wrote, read before its clock starts.
 *
 * Here (2 cores, PostgreSQL 15 on loopback, 100 000 users), the setup
 * takes about 20 s: sealing and blind indexes ~10 s (300 000 of each, one
 * thread), the INSERTs ~8 s, VACUUM ANALYZE ~1 s, the copy ~1 s; then the
 * job ~50-60 s and the limit ~8-10 s: about 1.5 min in all with start-up
 * and checks (2 min with `npm run bench`'s build first).
 */
export async function reencryptBench(
  adminUrl: string,
  url: string,
  users: number,
): Promise<ReencryptResult> {
  const invalid: string[] = [];
  const conf = parseConfig(
    {
      server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" } },
      data: { database: { source: url, migrate: "up" } },
      kms: {
        root_key: Buffer.alloc(32, 6).toString("base64"),
        reencryption_batch_size: BATCH,
        reencryption_pause: "0s",
      },
      auth: { enabled: false },
    },
    "bench",
  );

  const seeded = await seedUsers(url, conf, users);

  // A copy of exactly the same rows (and table layout) for the limit; the
  // source may have no session open while it is copied.
  const started = performance.now();
  const copyUrl = await copyDatabase(adminUrl, url);
  const copyMs = performance.now() - started;
  try {
    const ours = await runJob(url, conf, users, invalid);
    const values = await readMoved(url, users);
    const limit = await plainUpdate(copyUrl, values, invalid);
    return { users, setup: { ...seeded, copyMs }, ours, limit, invalid };
  } finally {
    await dropDatabase(adminUrl, copyUrl);
  }
}

/**
 * Ours: the service in process; StartReencryption (batch 500, pause 0) and
 * GetReencryptionStatus over gRPC until FINISHED. Its wall time is the
 * status's started_at to finished_at (both the database's clock, set by the
 * start call's and the last batch's transactions): it includes the worker's
 * pick-up (it looks for a job every 2 s) but not this process's polling
 * interval.
 */
async function runJob(
  url: string,
  conf: ReturnType<typeof parseConfig>,
  users: number,
  invalid: string[],
): Promise<ReencryptResult["ours"]> {
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const app = await wireApp(
    conf,
    createLogger({ level: "info", format: "json", destination: sink }),
  );
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` });
  const kms = createClient(KmsService, transport);
  try {
    await checkpoint(url);
    const started = performance.now();
    await kms.startReencryption({ batchSize: BATCH, pause: durationFromMs(0) });
    let status;
    let progress = { done: -1n, at: performance.now() };
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      status = (await kms.getReencryptionStatus({})).status!;
      if (status.state !== ReencryptionState.RUNNING) break;
      if (status.rowsDone !== progress.done)
        progress = { done: status.rowsDone, at: performance.now() };
      else if (performance.now() - progress.at > STALL_MS) {
        // A job that no longer moves (a batch failing over and over): end
        // the run rather than wait for ever.
        invalid.push(
          `the job made no progress for ${STALL_MS / 1000} s at ${status.rowsDone} rows (last error: ${status.lastError || "none"})`,
        );
        await kms.stopReencryption({});
        break;
      }
    }
    const observedSeconds = (performance.now() - started) / 1000;
    const seconds =
      status.finishedAt && status.startedAt
        ? (timestampMs(status.finishedAt) - timestampMs(status.startedAt)) / 1000
        : observedSeconds;
    const rowsDone = Number(status.rowsDone);
    const rowsFailed = Number(status.rowsFailed);
    if (status.state !== ReencryptionState.FINISHED)
      invalid.push(`the job ended ${ReencryptionState[status.state]}, not FINISHED`);
    if (rowsDone !== users) invalid.push(`the job moved ${rowsDone} rows of ${users}`);
    if (rowsFailed !== 0) invalid.push(`the job failed ${rowsFailed} rows: ${status.lastError}`);
    const left = await oldValues(url);
    if (left !== 0) invalid.push(`after the job ${left} rows still hold a value under keys 1..3`);
    // A few users read back through the service: the moved values still open.
    const usersClient = createClient(UserService, transport);
    for (const id of new Set([1, Math.ceil(users / 2), users])) {
      const { user } = await usersClient.getUser({ id: BigInt(id), view: View.FULL });
      const want = person(id);
      if (user?.email !== want.email || user.phone !== want.phone || user.name !== want.name)
        invalid.push(`user ${id} reads back wrong after the job`);
    }
    return {
      rowsDone,
      rowsFailed,
      seconds,
      perSecond: rowsDone / seconds,
      observedSeconds,
    };
  } finally {
    await app.stop();
  }
}

interface Moved {
  ids: number[];
  fields: { ciphertext: Buffer[]; version: number[] }[];
}

/** The rows as the job left them, by ascending id, in batches of BATCH: the limit's values. */
async function readMoved(url: string, users: number): Promise<Moved[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const batches: Moved[] = [];
    let after = 0;
    for (;;) {
      const { rows } = await client.query<Record<string, unknown> & { id: number }>(
        `SELECT id, email_encrypted, email_key_version, phone_encrypted, phone_key_version,
                name_encrypted, name_key_version
           FROM users WHERE id > $1 ORDER BY id LIMIT $2`,
        [after, BATCH],
      );
      if (rows.length === 0) break;
      batches.push({
        ids: rows.map((r) => r.id),
        fields: PII_FIELDS.map((f) => ({
          ciphertext: rows.map((r) => r[`${f}_encrypted`] as Buffer),
          version: rows.map((r) => r[`${f}_key_version`] as number),
        })),
      });
      after = rows.at(-1)!.id;
    }
    if (batches.reduce((n, b) => n + b.ids.length, 0) !== users)
      throw new Error("the limit's values: not every row was read back");
    return batches;
  } finally {
    await client.end();
  }
}

/**
 * The limit: a plain UPDATE of the three ciphertext columns, their version
 * columns and key_versions from arrays of precomputed values, BATCH rows at
 * a time by ascending id, one transaction each, on one connection.
 */
async function plainUpdate(
  url: string,
  batches: Moved[],
  invalid: string[],
): Promise<ReencryptResult["limit"]> {
  await checkpoint(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    let rows = 0;
    const started = performance.now();
    for (const b of batches) {
      await client.query("BEGIN");
      const { rowCount } = await client.query(
        `UPDATE users u SET email_encrypted = v.ee, email_key_version = v.ev,
            phone_encrypted = v.pe, phone_key_version = v.pv,
            name_encrypted = v.ne, name_key_version = v.nv,
            key_versions = ARRAY[v.ev, v.pv, v.nv]
           FROM unnest($1::int[], $2::bytea[], $3::int[], $4::bytea[], $5::int[], $6::bytea[], $7::int[])
             AS v(id, ee, ev, pe, pv, ne, nv)
          WHERE u.id = v.id`,
        [b.ids, ...b.fields.flatMap((f) => [f.ciphertext, f.version])],
      );
      await client.query("COMMIT");
      rows += rowCount ?? 0;
    }
    const seconds = (performance.now() - started) / 1000;
    const expected = batches.reduce((n, b) => n + b.ids.length, 0);
    if (rows !== expected) invalid.push(`the limit updated ${rows} rows of ${expected}`);
    const left = await oldValues(url);
    if (left !== 0) invalid.push(`after the limit ${left} rows still hold a value under keys 1..3`);
    return { rows, seconds, perSecond: rows / seconds };
  } finally {
    await client.end();
  }
}

/** Rows holding any value under a key older than the active one. */
async function oldValues(url: string): Promise<number> {
  return one(url, async (c) => {
    const { rows } = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM users
        WHERE key_versions && $1::int[]
           OR email_key_version <> $2 OR phone_key_version <> $2 OR name_key_version <> $2`,
      [OLD_VERSIONS, ACTIVE],
    );
    return rows[0]!.n;
  });
}

/** Flushes dirty pages before a clock starts, so neither part pays for the setup's (superuser only; skipped otherwise). */
async function checkpoint(url: string) {
  await one(url, (c) => c.query("CHECKPOINT")).catch(() => undefined);
}

async function copyDatabase(adminUrl: string, url: string): Promise<string> {
  const source = new URL(url).pathname.slice(1);
  const name = `${source}_copy`;
  await one(adminUrl, (c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${source}`));
  const copy = new URL(url);
  copy.pathname = `/${name}`;
  return copy.toString();
}

async function dropDatabase(adminUrl: string, url: string) {
  const name = new URL(url).pathname.slice(1);
  await one(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}
