import { Gauge, type Metric } from "prom-client";
import type { MigrationCounts, StartupMigrations } from "../../internal/migrate/startup.js";
import { readAtScrape, scrapedGauge } from "../../internal/server/metrics.js";

/** How long a scrape keeps the pending and failed counts, and waits for new ones. */
const PENDING_TTL_MS = 5000;
const PENDING_TIMEOUT_MS = 2000;

/**
 * The migrations as Prometheus series: what this process's start-up run
 * applied (set once: a run happens only at start-up), and how many are
 * pending or failed now, read from the database at scrape. A failed run
 * (this process's at start-up, which stops it, or any migrator's) is
 * counted from migrate_failures, so another instance reports it.
 */
export function migrationMetrics(
  started: StartupMigrations | undefined,
  counts: (() => Promise<MigrationCounts>) | undefined,
): Metric[] {
  const metrics: Metric[] = [];
  if (started) {
    const duration = new Gauge({
      name: "migration_duration_seconds",
      help: "How long each migration applied by this process at start-up ran (its last try).",
      labelNames: ["migration"] as const,
      registers: [],
    });
    const lockWait = new Gauge({
      name: "migration_lock_wait_seconds",
      help: "Time each migration applied at start-up lost to lock_timeout refusals and the pauses before its next try (0: none).",
      labelNames: ["migration"] as const,
      registers: [],
    });
    for (const m of started.applied) {
      duration.set({ migration: m.name }, m.ms / 1000);
      lockWait.set({ migration: m.name }, m.lockRetryMs / 1000);
    }
    const run = (name: string, help: string, value: number) => {
      const g = new Gauge({ name, help, registers: [] });
      g.set(value);
      return g;
    };
    metrics.push(
      duration,
      lockWait,
      run(
        "migration_startup_duration_seconds",
        "How long this process's start-up migration run took, its wait for the migration lock included.",
        started.ms / 1000,
      ),
      run(
        "migration_startup_lock_wait_seconds",
        "How long this process's start-up migration run waited for the migration lock (another instance migrating).",
        started.lockWaitMs / 1000,
      ),
      run(
        "migration_last_success_timestamp_seconds",
        "When this process's start-up migration run succeeded (Unix time), whether or not it had anything to apply.",
        started.finishedAt.getTime() / 1000,
      ),
    );
  }
  if (counts) {
    const read = readAtScrape(counts, { ttlMs: PENDING_TTL_MS, timeoutMs: PENDING_TIMEOUT_MS });
    metrics.push(
      scrapedGauge(
        "migrations_pending",
        "Migrations in this version's folder not applied to the database (absent while that cannot be read).",
        async () => (await read())?.pending,
      ),
      scrapedGauge(
        "migrations_failed",
        "Migrations in this version's folder whose newest attempt (by any migrator, recorded in migrate_failures) failed and that stand as they were (absent while that cannot be read).",
        async () => (await read())?.failed,
      ),
    );
  }
  return metrics;
}
