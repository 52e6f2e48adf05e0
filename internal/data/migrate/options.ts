import { durationMs } from "@bufbuild/protobuf/wkt";
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
  const ms = (d: Parameters<typeof durationMs>[0] | undefined, fallback: number) =>
    d ? durationMs(d) : fallback;
  return {
    databaseUrl,
    dir: m?.dir || defaultMigrationsDir(),
    lockWaitMs: ms(m?.lockWait, 60_000),
    lockTimeoutMs: ms(m?.lockTimeout, 5_000),
    statementTimeoutMs: ms(m?.statementTimeout, 600_000),
    log,
  };
}
