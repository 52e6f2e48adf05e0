import type { Config } from "../../internal/conf/load.js";
import { openData, type DataOptions } from "../../internal/data/data.js";
import { UserUsecase } from "../../internal/biz/user_usecase.js";
import { migratorOptions } from "../../internal/migrate/options.js";
import { newUserRepo } from "../../internal/data/user_repo.js";
import { newUserStore } from "../../internal/data/user_store.js";
import { migrateOnStart, migrationReadiness } from "../../internal/migrate/startup.js";
import type { Logger } from "../../internal/pkg/log/logger.js";
import { isDatabaseUnavailable } from "../../internal/pkg/dberr/dberr.js";
import { BizError } from "../../internal/biz/errors.js";
import type { LoginAttempts } from "../../internal/biz/login.js";
import { memoryLoginAttempts, redisLoginAttempts } from "../../internal/data/login_attempts.js";
import { fairQueue } from "../../internal/pkg/limit/fair_queue.js";
import { durationMs, timestampDate } from "@bufbuild/protobuf/wkt";
import { RootKeys } from "../../internal/biz/root_keys.js";
import type { AuditCheckpoints, Kms } from "../../internal/conf/conf_pb.js";
import type { Data } from "../../internal/data/data.js";
import { newDataKeyRepo } from "../../internal/data/kms_repo.js";
import { newKeyring } from "../../internal/biz/keyring.js";
import { KeyLifecycle, type KeyPolicy } from "../../internal/biz/key_lifecycle.js";
import {
  newCallerCrypto,
  newFieldCipher,
  type CallerCrypto,
  type FieldCipher,
} from "../../internal/biz/field_cipher.js";
import { encryptionUsage } from "../../internal/biz/kms_usage.js";
import { startKmsJob } from "../../internal/biz/kms_job.js";
import { Reencryption } from "../../internal/biz/reencryption.js";
import { IndexRotation } from "../../internal/biz/index_rotation.js";
import { newIndexKeyHolder } from "../../internal/biz/index_keys.js";
import { newIndexRotationRepo } from "../../internal/data/index_rotation_repo.js";
import { newReencryptionRepo } from "../../internal/data/reencryption_repo.js";
import { AuditChain, AuditTrail } from "../../internal/biz/audit.js";
import { AuditWatch, type CheckpointSink } from "../../internal/biz/audit_watch.js";
import { newAuditRepo } from "../../internal/data/audit_repo.js";
import { fileCheckpointSink, httpCheckpointSink } from "../../internal/data/audit_sinks.js";
import { Gauge, type Metric } from "prom-client";
import { loadRootKey } from "../../internal/pkg/kms/rootkey.js";
import type { ProtectedValues } from "../../internal/biz/kms.js";
import type { ReadinessCheck } from "../../internal/server/http_routes.js";
import { startServers } from "../../internal/server/server.js";
import { newKmsService } from "../../internal/service/kms.js";
import { newUserService } from "../../internal/service/user.js";

export interface App {
  grpcPort: number;
  httpPort: number;
  /** Re-reads the TLS certificate files (SIGHUP); see Servers.reloadTls. */
  reloadTls(): boolean;
  /** Drains both ports, then stops the KMS and closes the database (and the
   *  embedded PostgreSQL). Resolves true when no in-flight call had to be cut. */
  stop(): Promise<boolean>;
}

/** How long a starting instance waits for the configured Redis before serving without it. */
const REDIS_WAIT_MS = 5000;

/** Builds the service from its configuration: Kratos' wire.go, by hand. */
export async function wireApp(conf: Config, log: Logger, opts: DataOptions = {}): Promise<App> {
  const database = conf.data!.database!;
  const data = await openData(database, log, opts);
  // Undone in reverse order on failure or stop.
  const cleanup: (() => Promise<void>)[] = [() => data.close()];
  const undo = async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  };
  try {
    const migrator = migratorOptions(database, data.url, log);
    await migrateOnStart(database.migrate, migrator, data.pool);
    const readiness: Record<string, ReadinessCheck> = {
      database: publicCheck("database", data.ready, () => "unreachable", log),
    };
    if (database.migrate !== "off") {
      readiness.migrations = migrationReadiness(migrator.dir, data.pool);
    }
    const userRepo = newUserRepo(data.pool);
    const kms = await wireKms(conf.kms!, data, [newUserStore(data.pool)], log);
    cleanup.push(() => kms.stop());
    readiness.kms = publicCheck(
      "kms",
      () => kms.lifecycle.ready(),
      (err) =>
        isDatabaseUnavailable(err)
          ? "database unreachable"
          : err instanceof BizError
            ? err.message
            : "failed",
      log,
    );
    const policy = {
      maxAttempts: conf.auth!.maxLoginAttempts,
      lockMs: durationMs(conf.auth!.lockDuration!),
    };
    let logins: LoginAttempts = memoryLoginAttempts(policy);
    const redisAddr = conf.data!.redis?.addr;
    if (redisAddr) {
      const shared = redisLoginAttempts(redisAddr, policy, log);
      cleanup.push(() => shared.close());
      // Not serving before Redis answers (within a bound), so no login is
      // counted in this instance alone while it connects.
      if (!(await shared.connected(REDIS_WAIT_MS))) {
        log.warn("Redis not answering at start: counting login attempts in memory until it does");
      }
      // Not a reason to stop serving: it only says the counts are per instance.
      readiness.logins = shared.health;
      logins = shared;
    }
    const limits = conf.limits!;
    const hashing = fairQueue({
      concurrency: limits.passwordHashConcurrency,
      capacity: limits.passwordHashQueue,
      perKey: limits.passwordHashesPerCaller,
    });
    const users = new UserUsecase(userRepo, kms.cipher, { logins, policy, hashing });
    const bindings = [newKmsService(kms), newUserService(users)];
    const servers = await startServers(
      conf.server!,
      conf.auth,
      conf.limits!,
      bindings,
      readiness,
      log,
      auditMetrics(kms.auditWatch),
    );
    return {
      grpcPort: servers.grpcPort,
      httpPort: servers.httpPort,
      reloadTls: () => servers.reloadTls(),
      stop: async () => {
        const drained = await servers.shutdown();
        await undo();
        return drained;
      },
    };
  } catch (err) {
    await undo();
    throw err;
  }
}

export interface WiredKms {
  lifecycle: KeyLifecycle;
  /** The stores' cipher. */
  cipher: FieldCipher;
  /** KmsService's callers' cipher: a key domain of its own. */
  callerCrypto: CallerCrypto;
  reencryption: Reencryption;
  indexRotation: IndexRotation;
  auditTrail: AuditTrail;
  auditWatch: AuditWatch;
  /** Stops the background job, then zeroes every key this instance holds. */
  stop(): Promise<void>;
}

/**
 * The KMS on this database, initialised (index key and active key ready,
 * root key proven) and its background job started.
 */
export async function wireKms(
  conf: Kms,
  data: Data,
  stores: ProtectedValues[],
  log: Logger,
): Promise<WiredKms> {
  const roots = rootKeys(conf);
  const checkpointSinks = await auditSinks(conf.auditCheckpoints!);
  const audit = new AuditChain();
  const repo = newDataKeyRepo(data.pool, data.url, audit, log);
  const keyring = newKeyring(repo, roots, durationMs(conf.cacheTtl!));
  const lifecycle = new KeyLifecycle({
    repo,
    keyring,
    roots,
    policy: keyPolicy(conf),
    stores,
    audit,
    log,
  });
  const init = await lifecycle.init();
  const index = newIndexKeyHolder(init.index, () => lifecycle.loadIndexKeys());
  const usage = encryptionUsage();
  const cipher = newFieldCipher(keyring, index, init.pageTokens, usage);
  const batches = {
    batchSize: conf.reencryptionBatchSize,
    pauseMs: durationMs(conf.reencryptionPause!),
  };
  // The jobs move and index the users' values (the one sealed store today).
  const users = newUserStore(data.pool);
  const reencryption = new Reencryption(
    newReencryptionRepo(data.pool, audit, newUserStore),
    users,
    repo,
    cipher,
    batches,
    log,
  );
  const indexRotation = new IndexRotation(
    newIndexRotationRepo(data.pool, audit, newUserStore),
    users,
    cipher,
    (rootKeyId) => lifecycle.newIndexKey(rootKeyId),
    batches,
    log,
  );
  const job = await startKmsJob({
    repo,
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
    intervalMs: durationMs(conf.maintenanceInterval!),
    log,
  }).catch((err: unknown) => {
    index.close();
    init.pageTokens.destroy();
    keyring.forget();
    audit.forget();
    throw err;
  });
  const auditTrail = new AuditTrail(newAuditRepo(data.pool), audit);
  const auditWatch = watchAudit(conf.auditCheckpoints!, auditTrail, audit, checkpointSinks, log);
  // Bounded (since the newest checkpoint, or the newest events), and never
  // fatal: a broken trail is reported, the keys still serve.
  await auditWatch.start();
  return {
    lifecycle,
    cipher,
    callerCrypto: newCallerCrypto(keyring, index, usage),
    reencryption,
    indexRotation,
    auditTrail,
    auditWatch,
    stop: async () => {
      await auditWatch.stop();
      await job.stop();
      keyring.forget();
      audit.forget();
      // A late call then answers KMS_NOT_READY rather than hash under zeros.
      index.close();
      init.pageTokens.destroy();
    },
  };
}

/** Where checkpoints go besides the log. */
async function auditSinks(conf: AuditCheckpoints): Promise<CheckpointSink[]> {
  const sinks: CheckpointSink[] = [];
  if (conf.file) sinks.push(await fileCheckpointSink(conf.file));
  if (conf.httpUrl) sinks.push(httpCheckpointSink(conf.httpUrl, durationMs(conf.httpTimeout!)));
  return sinks;
}

/** The audit trail's watch, writing checkpoints to the log and `sinks`. */
function watchAudit(
  conf: AuditCheckpoints,
  trail: AuditTrail,
  chain: AuditChain,
  sinks: CheckpointSink[],
  log: Logger,
): AuditWatch {
  const policy = {
    everyEvents: conf.everyEvents,
    intervalMs: durationMs(conf.interval!),
    pollMs: durationMs(conf.pollInterval!),
  };
  return new AuditWatch(trail, chain, sinks, policy, log);
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

/** The configured root key and, during a rotation, the previous one. */
export function rootKeys(conf: Kms): RootKeys {
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
export function keyPolicy(conf: Kms): KeyPolicy {
  return {
    algorithm: conf.algorithm,
    rotateIntervalMs: durationMs(conf.rotateInterval!),
    maxEncryptionsPerKey: Number(conf.maxEncryptionsPerKey),
  };
}

/**
 * A readiness check that shows only `reason(err)` on /readyz (no addresses,
 * no driver messages) and logs the real error when it changes.
 */
function publicCheck(
  name: string,
  check: () => Promise<void>,
  reason: (err: unknown) => string,
  log: Logger,
): ReadinessCheck {
  let logged: string | undefined;
  return async () => {
    try {
      await check();
      logged = undefined;
    } catch (err) {
      const message = (err as Error).message;
      if (message !== logged) {
        logged = message;
        log.warn({ check: name, err: { message } }, "readiness check failed");
      }
      throw new Error(reason(err));
    }
  };
}
