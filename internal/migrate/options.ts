import type { Duration } from "@bufbuild/protobuf/wkt";
import type { Data_Database } from "../conf/conf_pb.js";
import { defaults, migrateToolDefaults } from "../conf/defaults.js";
import { parseDurationMs } from "../conf/duration.js";
import type { Logger } from "../pkg/log/logger.js";
import { defaultMigrationsDir } from "./dir.js";
import type { TransactionMode } from "./analyse.js";
import type { EventSink } from "./events.js";
import type { Thresholds } from "./lint/severity.js";

/** How to reach the database and how patient to be. */
export interface MigratorOptions {
  databaseUrl: string;
  /** The folder of NNNN_title.up.sql / .down.sql pairs. */
  dir: string;
  /** Give up connecting after this long (a URL's connect_timeout wins). */
  connectTimeoutMs: number;
  /** How long to wait for another migrator's lock before giving up. */
  lockWaitMs: number;
  /** Session lock_timeout while migrating: fail fast instead of queueing behind traffic. */
  lockTimeoutMs: number;
  /** Session statement_timeout while migrating; 0 disables it. */
  statementTimeoutMs: number;
  /** Who owns transactions (default `migration`): see TransactionMode. */
  transactions?: TransactionMode;
  /**
   * Tries in all of a migration refused by lock_timeout (SQLSTATE 55P03),
   * where a retry is safe (retry.ts), 500ms, 1s, 2s … apart with jitter; 1
   * fails fast (`--no-retry`). `data.database.migration.lock_attempts`.
   */
  lockAttempts: number;
  /** Open transactions older than this are named before a concurrent index build waits for them. */
  oldTransactionAgeMs: number;
  /** wait: name them and build; refuse: name them and apply nothing (exit 1). */
  oldTransactions: "wait" | "refuse";
  /**
   * Where a rule whose cost grows with the table turns from warning to error
   * (and so needs consent at `up`): `data.database.migration.lint_error_rows`
   * and `lint_error_bytes`.
   */
  thresholds: Thresholds;
  /** Recorded with consent beside the database user: --operator, else MIGRATE_OPERATOR. */
  operator?: string;
  /**
   * A shell command run before a run changes anything (`up`, `down`,
   * `redo` with steps to take), with the database URL in its environment; a
   * non-zero exit applies nothing. `data.database.migration.backup_command`,
   * `--backup-command`.
   */
  backupCommand?: string;
  /** The backup command is stopped after this long, and nothing applied. */
  backupTimeoutMs: number;
  /**
   * Apply contracts even while a live instance needs the schema before them
   * (contract_gate.ts): logged with the instances. `--force`.
   */
  force?: boolean;
  /** Each step of a run as it happens (`--events`, the server's metrics). */
  events?: EventSink;
  log: Logger;
}

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
    lockAttempts: m?.lockAttempts || fallback.lock_attempts,
    oldTransactionAgeMs: ms(m?.oldTransactionAge, fallback.old_transaction_age),
    oldTransactions: m?.oldTransactions === "refuse" ? "refuse" : "wait",
    thresholds: {
      errorRows: Number(m?.lintErrorRows || fallback.lint_error_rows),
      errorBytes: Number(m?.lintErrorBytes || fallback.lint_error_bytes),
    },
    operator: process.env.MIGRATE_OPERATOR?.trim() || undefined,
    backupCommand: m?.backupCommand || undefined,
    backupTimeoutMs: ms(m?.backupTimeout, fallback.backup_timeout),
    log,
  };
}
