import type { Duration } from "@bufbuild/protobuf/wkt";
import type { Data_Database } from "../../conf/conf_pb.js";
import type { Logger } from "../../pkg/log/logger.js";
import { defaultMigrationsDir } from "./dir.js";
import type { MigratorOptions } from "./runner.js";

/** Migrator settings from `data.database.migration`, defaults filled by the config loader. */
export function migratorOptions(
  conf: Data_Database | undefined,
  databaseUrl: string,
  log: Logger,
): MigratorOptions {
  const m = conf?.migration;
  // Not @bufbuild/protobuf's durationMs: loading it would slow every command.
  const ms = (d: Duration | undefined, fallback: number) =>
    d ? Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6) : fallback;
  return {
    databaseUrl,
    dir: m?.dir || defaultMigrationsDir(),
    connectTimeoutMs: ms(conf?.connectTimeout, 10_000),
    lockWaitMs: ms(m?.lockWait, 60_000),
    lockTimeoutMs: ms(m?.lockTimeout, 5_000),
    statementTimeoutMs: ms(m?.statementTimeout, 600_000),
    log,
  };
}
