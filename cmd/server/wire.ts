import { durationMs } from "@bufbuild/protobuf/wkt";
import { UserUsecase } from "../../internal/biz/user_usecase.js";
import type { Config } from "../../internal/conf/load.js";
import { openData, type DataOptions } from "../../internal/data/data.js";
import { newInstanceRepo } from "../../internal/data/instance_repo.js";
import { migratorOptions } from "../../internal/migrate/options.js";
import {
  migrateOnStart,
  migrationReadiness,
  migrationCounts,
} from "../../internal/migrate/startup.js";
import { newUserRepo } from "../../internal/data/user_repo.js";
import { fairQueue } from "../../internal/pkg/limit/fair_queue.js";
import { packageVersion } from "../../internal/pkg/package_root/package_root.js";
import type { Logger } from "../../internal/pkg/log/logger.js";
import type { ReadinessCheck } from "../../internal/server/http_routes.js";
import { startServers } from "../../internal/server/server.js";
import { newKmsService } from "../../internal/service/kms.js";
import { newUserService } from "../../internal/service/user.js";
import { openKms } from "./kms.js";
import { dataMetrics } from "./data_metrics.js";
import { self, startHeartbeat } from "./heartbeat.js";
import { countLoginRefusals, loginAttempts } from "./logins.js";
import { migrationMetrics } from "./migration_metrics.js";
import { databaseCheck, kmsCheck } from "./readiness.js";

export interface App {
  grpcPort: number;
  httpPort: number;
  /** Re-reads the TLS certificate files (SIGHUP); see Servers.reloadTls. */
  reloadTls(): boolean;
  /** Drains both ports, then stops the KMS and closes the database (and the
   *  embedded PostgreSQL). Resolves true when no in-flight call had to be cut. */
  stop(): Promise<boolean>;
}

export interface WireOptions extends DataOptions {
  /** Aborted by a signal during start-up: stops the start-up `up` (migrateOnStart). */
  signal?: AbortSignal;
}

/** Builds the service from its configuration: Kratos' wire.go, by hand. */
export async function wireApp(conf: Config, log: Logger, opts: WireOptions = {}): Promise<App> {
  const database = conf.data!.database!;
  const data = await openData(database, log, opts);
  // Undone in reverse order on failure or stop.
  const cleanup: (() => Promise<void>)[] = [() => data.close()];
  const undo = async () => {
    for (const step of cleanup.reverse()) await step().catch(() => undefined);
  };
  try {
    // Migrations hold their lock and settings for the session: never through a pooler.
    const migrator = migratorOptions(database, data.direct.url, log);
    const started = await migrateOnStart(database.migrate, migrator, data.pool, opts.signal);
    const readiness: Record<string, ReadinessCheck> = { database: databaseCheck(data.ready, log) };
    const checked = database.migrate !== "off";
    if (checked) readiness.migrations = migrationReadiness(migrator.dir, data.pool);
    const metrics = [
      ...dataMetrics(data.pool),
      ...migrationMetrics(started, checked ? migrationCounts(migrator.dir, data.pool) : undefined),
    ];

    const userRepo = newUserRepo(data.pool);
    const kms = await openKms(conf.kms!, { data, log });
    cleanup.push(() => kms.close());
    await kms.runner.start();
    readiness.kms = kmsCheck(kms.ready, log);

    const policy = {
      maxAttempts: conf.auth!.maxLoginAttempts,
      lockMs: durationMs(conf.auth!.lockDuration!),
    };
    const logins = await loginAttempts(conf.data!.redis?.addr, policy, log);
    cleanup.push(() => logins.close());
    if (logins.health) readiness.logins = logins.health;
    const limits = conf.limits!;
    const hashing = fairQueue({
      concurrency: limits.passwordHashConcurrency,
      capacity: limits.passwordHashQueue,
      perKey: limits.passwordHashesPerCaller,
    });
    const users = new UserUsecase(userRepo, kms.cipher, {
      logins: logins.attempts,
      policy,
      hashing,
    });
    metrics.push(countLoginRefusals(users), ...kms.metrics);

    // Registered before listening, deleted once drained (cleanup runs after
    // the servers' shutdown): the row stands as long as calls may be served.
    const intervalMs = durationMs(database.migration!.heartbeatInterval!);
    const heartbeat = await startHeartbeat(
      newInstanceRepo(data.direct.url, self(migrator.dir, packageVersion(import.meta.url), log), {
        ttlMs: 3 * intervalMs,
        statementTimeoutMs: Math.min(intervalMs, 5000),
        connectTimeoutMs: durationMs(database.connectTimeout!),
      }),
      intervalMs,
      log,
    );
    cleanup.push(() => heartbeat.stop());

    const servers = await startServers(
      conf.server!,
      conf.auth,
      limits,
      [newKmsService(kms), newUserService(users)],
      readiness,
      log,
      metrics,
      conf.log!.requestSample,
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
