import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { Gauge, type Metric } from "prom-client";
import type { JobProgress, JobRepo } from "../../internal/biz/job_worker.js";
import { IndexRotation } from "../../internal/biz/index_rotation.js";
import { AuditChain } from "../../internal/biz/kms/audit_chain.js";
import { AuditTrail } from "../../internal/biz/kms/audit_trail.js";
import { AuditWatch, type CheckpointSink } from "../../internal/biz/kms/audit_watch.js";
import { bootstrap } from "../../internal/biz/kms/bootstrap.js";
import type { DataKeyRepo, KeyPolicy } from "../../internal/biz/kms/data_keys.js";
import { newCallerCrypto, newFieldCipher } from "../../internal/biz/kms/field_cipher.js";
import { loadIndexKeys, newIndexKeyHolder } from "../../internal/biz/kms/index_keys.js";
import { KeyLifecycle } from "../../internal/biz/kms/key_lifecycle.js";
import { keyMint } from "../../internal/biz/kms/key_mint.js";
import { KeyQueries } from "../../internal/biz/kms/key_queries.js";
import { newKeyring } from "../../internal/biz/kms/keyring.js";
import { encryptionUsage } from "../../internal/biz/kms/kms_usage.js";
import { kmsReady } from "../../internal/biz/kms/readiness.js";
import { RootKeyRotation } from "../../internal/biz/kms/root_key_rotation.js";
import { RootKeys } from "../../internal/biz/kms/root_keys.js";
import { Reencryption } from "../../internal/biz/reencryption.js";
import type { AuditCheckpoints, Kms as KmsConf } from "../../internal/conf/conf_pb.js";
import { newAuditRepo } from "../../internal/data/audit_repo.js";
import { fileCheckpointSink, httpCheckpointSink } from "../../internal/data/audit_sinks.js";
import type { Data } from "../../internal/data/data.js";
import { newDataKeyRepo } from "../../internal/data/data_key_repo.js";
import { newIndexRotationRepo } from "../../internal/data/index_rotation_repo.js";
import { newKeyEvents } from "../../internal/data/key_listener.js";
import { newReencryptionRepo } from "../../internal/data/reencryption_repo.js";
import { newUserStore } from "../../internal/data/user_store.js";
import { newStoredKeys } from "../../internal/data/stored_key_repo.js";
import { loadRootKey } from "../../internal/pkg/kms/rootkey.js";
import type { Logger } from "../../internal/pkg/log/logger.js";
import { readAtScrape, scrapedGauge } from "../../internal/server/metrics.js";
import type { KmsUseCases } from "../../internal/service/kms.js";
import { kmsRunner, type Runner } from "./kms_runner.js";

/** The KMS of one instance: its use cases, what observes it, and its background work. */
export interface Kms extends KmsUseCases {
  /** Rejects while the KMS cannot serve (kmsReady). */
  ready(): Promise<void>;
  /** The audit watch's state, the active key's age and the jobs' progress as Prometheus series, read at each scrape. */
  metrics: Metric[];
  /**
   * Key-change news, maintenance, the jobs' workers, the audit watch:
   * started by whoever serves (wire.ts), as a server is; not started, the
   * KMS still seals and opens (a benchmark, a test's extra instance).
   */
  runner: Runner;
  /** Stops the runner, then zeroes every key this instance holds. Once; later calls wait for it. */
  close(): Promise<void>;
}

export interface KmsDeps {
  /**
   * The pool its repositories use; the direct database its listener and
   * its jobs' locks use (they need sessions of their own).
   */
  data: Pick<Data, "pool" | "direct">;
  log: Logger;
  /**
   * Open what is there and change nothing (`migrate verify --data`): no key
   * made or recorded, no checkpoint file opened; its runner is never to be
   * started. Throws KmsInitError when the database holds no keys yet.
   */
  readOnly?: boolean;
}

/**
 * Opens the KMS on this database: index key, audit key and active key
 * ready (made once across instances on a fresh one), the root key proven.
 * Throws KmsInitError when the configured root key cannot serve.
 */
export async function openKms(conf: KmsConf, deps: KmsDeps): Promise<Kms> {
  const { pool, direct } = deps.data;
  const log = deps.log;
  const roots = rootKeys(conf);
  const sinks = deps.readOnly ? [] : await auditSinks(conf.auditCheckpoints!);
  const audit = new AuditChain();
  const keys = newDataKeyRepo(pool, audit);
  const stored = newStoredKeys(pool, audit);
  const keyring = newKeyring(keys, roots, durationMs(conf.cacheTtl!));
  const policy = keyPolicy(conf);
  const mint = keyMint(roots, policy);
  const started = await bootstrap({
    stored,
    keys,
    keyring,
    roots,
    mint,
    audit,
    log,
    readOnly: deps.readOnly,
  });
  const index = newIndexKeyHolder(started.index, () => loadIndexKeys(stored, roots));
  const usage = encryptionUsage();
  const cipher = newFieldCipher(keyring, index, started.pageTokens, usage);
  const lifecycle = new KeyLifecycle(keys, keyring, mint, policy, log);
  const batches = {
    batchSize: conf.reencryptionBatchSize,
    pauseMs: durationMs(conf.reencryptionPause!),
  };
  // The jobs move and index the users' values, the one sealed store today;
  // GetStatus counts the values under each key there.
  const users = newUserStore(pool);
  const jobs = {
    reencryption: newReencryptionRepo(pool, audit, newUserStore, direct.pool),
    index_key_rotation: newIndexRotationRepo(pool, audit, newUserStore, direct.pool),
  };
  const reencryption = new Reencryption(jobs.reencryption, users, keys, cipher, batches, log);
  const indexRotation = new IndexRotation(
    jobs.index_key_rotation,
    users,
    cipher,
    (rootKeyId) => mint.indexKey(rootKeyId),
    batches,
    log,
  );
  const auditTrail = new AuditTrail(newAuditRepo(pool), audit);
  const checkpoints = conf.auditCheckpoints!;
  const auditWatch = new AuditWatch(
    auditTrail,
    audit,
    sinks,
    { everyEvents: checkpoints.everyEvents, intervalMs: durationMs(checkpoints.interval!) },
    log,
  );
  const runner = kmsRunner({
    events: newKeyEvents(direct.url, log),
    keys,
    keyring,
    lifecycle,
    usage,
    workers: [
      { name: "re-encryption", worker: reencryption.worker },
      { name: "index-key rotation", worker: indexRotation.worker },
    ],
    // Writes and lookups find out by themselves too (the database refuses
    // stale indexes; reads carry the epoch): this only spares them a retry.
    onChange: () =>
      void index.reload().catch((err: unknown) => {
        log.warn({ err: { message: (err as Error).message } }, "index keys not reloaded");
      }),
    maintenanceMs: durationMs(conf.maintenanceInterval!),
    auditWatch,
    auditPollMs: durationMs(checkpoints.pollInterval!),
    log,
  });
  let closing: Promise<void> | undefined;
  return {
    keys: lifecycle,
    queries: new KeyQueries(keys, stored, [users], {
      algorithm: mint.algorithm,
      rotateIntervalMs: policy.rotateIntervalMs,
    }),
    rootKey: new RootKeyRotation(stored, keyring, roots, log),
    cipher,
    callerCrypto: newCallerCrypto(keyring, index, usage),
    reencryption,
    indexRotation,
    auditTrail,
    ready: () => kmsReady(keyring),
    metrics: [...auditMetrics(auditWatch), ...keyMetrics(keys, policy), ...jobMetrics(jobs)],
    runner,
    close: () =>
      (closing ??= (async () => {
        await runner.stop();
        // Counted while no runner flushed them (it was never started).
        await usage.flush(keys).catch(() => undefined);
        keyring.forget();
        audit.forget();
        // A late call then answers KMS_NOT_READY rather than hash under zeros.
        index.close();
        started.pageTokens.destroy();
      })()),
  };
}

/** The configured root key and, during a rotation, the previous one. */
export function rootKeys(conf: KmsConf): RootKeys {
  const previous = conf.previousRootKey;
  return new RootKeys(
    loadRootKey(conf),
    previous && {
      key: loadRootKey(previous, "kms.previous_root_key"),
      until: timestampDate(previous.until!),
    },
  );
}

/** The key policy a configuration sets (its defaults come from internal/conf). */
export function keyPolicy(conf: KmsConf): KeyPolicy {
  return {
    algorithm: conf.algorithm,
    rotateIntervalMs: durationMs(conf.rotateInterval!),
    maxEncryptionsPerKey: Number(conf.maxEncryptionsPerKey),
  };
}

/** Where checkpoints go besides the log. */
async function auditSinks(conf: AuditCheckpoints): Promise<CheckpointSink[]> {
  const sinks: CheckpointSink[] = [];
  if (conf.file) sinks.push(await fileCheckpointSink(conf.file));
  if (conf.httpUrl) sinks.push(httpCheckpointSink(conf.httpUrl, durationMs(conf.httpTimeout!)));
  return sinks;
}

/** The audit watch's state as Prometheus series, read at each scrape. */
function auditMetrics(watch: AuditWatch): Metric[] {
  return [
    new Gauge({
      name: "audit_chain_intact",
      help: "1 while the audit trail's chain agrees with itself and its checkpoints, 0 once it does not; absent until first checked.",
      registers: [],
      collect() {
        const { intact } = watch.state();
        if (intact === undefined) this.reset();
        else this.set(intact ? 1 : 0);
      },
    }),
    new Gauge({
      name: "audit_checkpoint_seq",
      help: "The audit event recorded by the newest checkpoint this process wrote (0: none yet).",
      registers: [],
      collect() {
        this.set(watch.state().checkpointSeq);
      },
    }),
  ];
}

// What a scrape reads from the database (one indexed row each), at most
// this often, waiting at most this long.
const SCRAPE_READ = { ttlMs: 5000, timeoutMs: 2000 };

/**
 * The active data key's age against the rotation policy: maintenance rotates
 * it once due, so a key older than kms.rotate_interval means rotation stalls.
 */
function keyMetrics(keys: Pick<DataKeyRepo, "active">, policy: KeyPolicy): Metric[] {
  const active = readAtScrape(() => keys.active(), SCRAPE_READ);
  return [
    scrapedGauge(
      "kms_active_key_created_timestamp_seconds",
      "When the active data key was made (Unix time); absent while it cannot be read.",
      async () => {
        const key = await active();
        return key && key.createdAt.getTime() / 1000;
      },
    ),
    scrapedGauge(
      "kms_key_rotate_interval_seconds",
      "How long a data key stays active before maintenance rotates it (kms.rotate_interval).",
      () => policy.rotateIntervalMs / 1000,
    ),
  ];
}

/**
 * The KMS's deployment-wide jobs (re-encryption, index-key rotation) as read
 * from their rows: running or not, rows done and failed, and when a batch
 * last moved it, which a stalled job stops advancing.
 */
function jobMetrics(jobs: Record<string, JobRepo<JobProgress & { state: string }>>): Metric[] {
  // Wrapped: undefined is then "could not read" (series left out), not "no job".
  const reads = Object.entries(jobs).map(
    ([kind, repo]) =>
      [kind, readAtScrape(async () => ({ row: await repo.job() }), SCRAPE_READ)] as const,
  );
  const gauge = (
    name: string,
    help: string,
    value: (j: (JobProgress & { state: string }) | undefined) => number | undefined,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ["kind"] as const,
      registers: [],
      async collect() {
        this.reset();
        for (const [kind, read] of reads) {
          const got = await read();
          const v = got && value(got.row);
          if (v !== undefined) this.set({ kind }, v);
        }
      },
    });
  return [
    gauge(
      "kms_job_running",
      "1 while the KMS job of this kind (reencryption, index_key_rotation) is running, 0 otherwise or when none was ever started.",
      (j) => (j?.state === "running" ? 1 : 0),
    ),
    gauge("kms_job_rows_done", "Rows the current or last job has moved.", (j) =>
      j ? Number(j.rowsDone) : 0,
    ),
    gauge("kms_job_rows_failed", "Rows the current or last job could not move.", (j) =>
      j ? Number(j.rowsFailed) : 0,
    ),
    gauge(
      "kms_job_last_progress_timestamp_seconds",
      "When a batch last advanced the job (its row's updated_at, Unix time); absent when none was ever started.",
      (j) => j && j.updatedAt.getTime() / 1000,
    ),
  ];
}
