import type { Duration } from "@bufbuild/protobuf/wkt";
import type { Data_Database } from "../conf/conf_pb.js";
import { defaults, migrateToolDefaults } from "../conf/defaults.js";
import { parseDurationMs } from "../conf/duration.js";
import type { Logger } from "../pkg/log/logger.js";
import { defaultMigrationsDir } from "./dir.js";
import type { MigratorOptions } from "./runner.js";

/**
 * Migrator settings from `data.database.migration` (the config loader fills
 * its defaults); without a config, internal/conf's defaults.
 */
export function migratorOptions(
  conf: Data_Database | undefined,
  databaseUrl: string,
  log: Logger,
): MigratorOptions {
  const m = conf?.migration;
  // Not @bufbuild/protobuf's durationMs: loading it would slow every command.
  const ms = (d: Duration | undefined, fallback: string) =>
    d ? Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6) : parseDurationMs(fallback)!;
  const fallback = defaults.data.database.migration;
  return {
    databaseUrl,
    dir: m?.dir || defaultMigrationsDir(),
    connectTimeoutMs: ms(conf?.connectTimeout, migrateToolDefaults.connect_timeout),
    lockWaitMs: ms(m?.lockWait, fallback.lock_wait),
    lockTimeoutMs: ms(m?.lockTimeout, fallback.lock_timeout),
    statementTimeoutMs: ms(m?.statementTimeout, fallback.statement_timeout),
    transactions: m?.transactions === "file" ? "file" : "migration",
    log,
  };
}
