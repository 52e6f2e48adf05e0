import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { KmsService, ReencryptionState } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import type { App } from "../../cmd/server/wire.js";
import { PG_MIGRATE_LOCK_ID } from "../../internal/migrate/seams/node_pg_migrate.js";
import { useTestApps } from "../helpers/app.js";
import { withClient } from "../helpers/db.js";
import { find, only, scrape } from "../helpers/metrics.js";
import { startupNames } from "../helpers/migrations.js";
import { runMigrate } from "../helpers/process.js";

// The series the service adds beside its RPC metrics, scraped from a real
// server: migrations at start-up, the database and its pool, the KMS,
// logins refused, readiness.

const ctx = useTestApps();
const config = { auth: { enabled: false, max_login_attempts: 2, lock_duration: "60s" } };
// Bounded polling for series read at scrape through a short cache, and for
// the readiness watch's next round.
const bounded = { timeout: 20_000, interval: 100 };

const clients = (app: App) => {
  const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` });
  return { kms: createClient(KmsService, transport), users: createClient(UserService, transport) };
};

let app: App;
let startedAt: number;
let readyAt: number;
beforeAll(async () => {
  startedAt = Date.now() / 1000;
  app = await ctx.start(config);
  readyAt = Date.now() / 1000;
});

describe("migrations applied at start-up", () => {
  it("Then each has its duration and lock wait, none is pending, and the run's success time is set", async () => {
    const s = await scrape(app.httpPort);
    for (const migration of startupNames) {
      expect(only(s, "migration_duration_seconds", { migration })).toBeGreaterThanOrEqual(0);
      expect(only(s, "migration_lock_wait_seconds", { migration })).toBe(0);
    }
    expect(find(s, "migration_duration_seconds")).toHaveLength(startupNames.length);
    const total = find(s, "migration_duration_seconds").reduce((n, x) => n + x.value, 0);
    expect(only(s, "migration_startup_duration_seconds")).toBeGreaterThanOrEqual(total);
    expect(only(s, "migration_startup_lock_wait_seconds")).toBeLessThan(
      only(s, "migration_startup_duration_seconds") + 0.001,
    );
    const success = only(s, "migration_last_success_timestamp_seconds");
    expect(success).toBeGreaterThanOrEqual(startedAt - 1);
    expect(success).toBeLessThanOrEqual(readyAt + 1);
    expect(only(s, "migrations_pending")).toBe(0);
  });

  it("When an applied migration's record is removed, Then it counts as pending, readiness reads 0, and a failed run to apply it counts as failed, until it is back", async () => {
    const last = startupNames.at(-1)!;
    const row = await withClient(ctx.db.url, async (c) => {
      const { rows } = await c.query("DELETE FROM pgmigrations WHERE name = $1 RETURNING *", [
        last,
      ]);
      return rows[0] as { name: string; run_on: Date; checksum: string };
    });
    try {
      await vi.waitFor(async () => {
        const s = await scrape(app.httpPort);
        expect(only(s, "migrations_pending")).toBe(1);
        expect(only(s, "migrations_failed")).toBe(0);
        expect(only(s, "server_ready")).toBe(0);
        expect(only(s, "server_readiness_check", { check: "migrations" })).toBe(0);
        expect(only(s, "server_readiness_check", { check: "database" })).toBe(1);
      }, bounded);
      // A deploy script's run fails (its trigger's table locked by another
      // session): the server, which never ran it, counts it from the
      // failure the migrator recorded.
      await withClient(ctx.db.url, async (holder) => {
        // SHARE: the gate still reads the table's size; the trigger's DDL waits.
        await holder.query("BEGIN; LOCK TABLE users IN SHARE MODE");
        const run = await runMigrate(["up", "--lock-timeout", "200ms", "--no-retry"], {
          env: { DATABASE_URL: ctx.db.url },
        });
        await holder.query("ROLLBACK");
        expect(run.code, run.output).toBe(1);
        expect(run.output).toContain(last);
      });
      await vi.waitFor(async () => {
        expect(only(await scrape(app.httpPort), "migrations_failed")).toBe(1);
      }, bounded);
    } finally {
      await withClient(ctx.db.url, (c) =>
        c.query("INSERT INTO pgmigrations (name, run_on, checksum) VALUES ($1, $2, $3)", [
          row.name,
          row.run_on,
          row.checksum,
        ]),
      );
    }
    // Applied again: the failure no longer stands.
    await vi.waitFor(async () => {
      const s = await scrape(app.httpPort);
      expect(only(s, "migrations_pending")).toBe(0);
      expect(only(s, "migrations_failed")).toBe(0);
      expect(only(s, "server_ready")).toBe(1);
    }, bounded);
  });

  it("When another migrator holds the migration lock at start-up, Then the wait is measured", async () => {
    const holdMs = 400;
    const second = await withClient(ctx.db.url, async (holder) => {
      await holder.query("SELECT pg_advisory_lock($1)", [PG_MIGRATE_LOCK_ID]);
      const starting = ctx.start(config);
      // Released only once the new instance has tried for it, then holdMs later:
      // its wait is at least that long.
      await vi.waitFor(async () => {
        const { rows } = await holder.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%pg_try_advisory_lock%'",
        );
        expect(rows[0]!.n).toBeGreaterThan(0);
      }, bounded);
      await new Promise((r) => setTimeout(r, holdMs));
      await holder.query("SELECT pg_advisory_unlock($1)", [PG_MIGRATE_LOCK_ID]);
      return starting;
    });
    const s = await scrape(second.httpPort);
    expect(only(s, "migration_startup_lock_wait_seconds")).toBeGreaterThanOrEqual(holdMs / 1000);
    // Nothing was left to apply: the first instance had.
    expect(find(s, "migration_duration_seconds")).toHaveLength(0);
  });
});

describe("the database", () => {
  it("Then its size and the pool's connections are served", async () => {
    const s = await scrape(app.httpPort);
    const size = await withClient(ctx.db.url, async (c) =>
      Number(
        (await c.query<{ b: string }>("SELECT pg_database_size(current_database())::text AS b"))
          .rows[0]!.b,
      ),
    );
    // Read at most every 30 s: the same order of size, not the same byte.
    expect(only(s, "db_size_bytes")).toBeGreaterThan(size / 2);
    expect(only(s, "db_size_bytes")).toBeLessThan(size * 2);
    const max = only(s, "db_pool_max_connections", { pool: "main" });
    expect(max).toBe(10);
    const inUse = only(s, "db_pool_connections", { pool: "main", state: "in_use" });
    const idle = only(s, "db_pool_connections", { pool: "main", state: "idle" });
    expect(inUse).toBeGreaterThanOrEqual(0);
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(inUse + idle).toBeLessThanOrEqual(max);
    expect(only(s, "db_pool_waiting_clients", { pool: "main" })).toBe(0);
  });
});

describe("the KMS", () => {
  it("Then the active key's age and the rotation policy are served", async () => {
    const s = await scrape(app.httpPort);
    const created = only(s, "kms_active_key_created_timestamp_seconds");
    expect(created).toBeGreaterThanOrEqual(startedAt - 1);
    expect(created).toBeLessThanOrEqual(Date.now() / 1000);
    expect(only(s, "kms_key_rotate_interval_seconds")).toBe(720 * 3600);
    expect(only(s, "audit_chain_intact")).toBe(1);
  });

  it("When a re-encryption runs to its end, Then the job's state and progress follow", async () => {
    let s = await scrape(app.httpPort);
    for (const kind of ["reencryption", "index_key_rotation"]) {
      expect(only(s, "kms_job_running", { kind })).toBe(0);
      expect(only(s, "kms_job_rows_done", { kind })).toBe(0);
      expect(find(s, "kms_job_last_progress_timestamp_seconds", { kind })).toHaveLength(0);
    }
    const { kms, users } = clients(app);
    await users.createUser({
      username: "sealed_one",
      password: "passw0rd-long",
      email: "s1@example.com",
    });
    await kms.rotateDataKey({ reason: "metrics test" });
    const before = Date.now() / 1000;
    await kms.startReencryption({});
    await vi.waitFor(async () => {
      const status = (await kms.getReencryptionStatus({})).status!;
      expect(status.state).toBe(ReencryptionState.FINISHED);
    }, bounded);
    await vi.waitFor(async () => {
      s = await scrape(app.httpPort);
      expect(only(s, "kms_job_rows_done", { kind: "reencryption" })).toBe(1);
    }, bounded);
    expect(only(s, "kms_job_running", { kind: "reencryption" })).toBe(0);
    expect(only(s, "kms_job_rows_failed", { kind: "reencryption" })).toBe(0);
    expect(
      only(s, "kms_job_last_progress_timestamp_seconds", { kind: "reencryption" }),
    ).toBeGreaterThanOrEqual(before - 1);
  });
});

describe("logins refused", () => {
  it("When a login fails past the limit, Then refusals are counted by reason", async () => {
    const count = async (reason: string) =>
      only(await scrape(app.httpPort), "login_refusals_total", { reason });
    expect(await count("invalid_credentials")).toBe(0);
    expect(await count("account_locked")).toBe(0);
    expect(await count("rate_limited")).toBe(0);
    const { users } = clients(app);
    const refusal = (password: string) =>
      users.verifyPassword({ login: "nobody_here", password }).then(
        () => undefined,
        (err: unknown) => ConnectError.from(err).code,
      );
    expect(await refusal("wrong-one")).toBe(Code.Unauthenticated);
    expect(await refusal("wrong-two")).toBe(Code.Unauthenticated);
    expect(await refusal("wrong-three")).toBe(Code.ResourceExhausted);
    expect(await count("invalid_credentials")).toBe(2);
    expect(await count("account_locked")).toBe(1);
    expect(await count("rate_limited")).toBe(0);
  });
});
