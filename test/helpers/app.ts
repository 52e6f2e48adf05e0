import { afterAll, afterEach, beforeAll } from "vitest";
import { parseConfig, type Config } from "../../internal/conf/load.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { wireApp, type App } from "../../cmd/server/wire.js";
import { createTestDatabase, type TestDatabase } from "./db.js";
import { databaseProxy } from "./proxy.js";

/** A throwaway 32-byte root key, base64. */
export const testRootKey = Buffer.alloc(32, 7).toString("base64");

/** Config for a server on free loopback ports against `databaseUrl`. */
export function testConfig(databaseUrl: string, extra: Record<string, unknown> = {}): Config {
  return parseConfig(
    {
      server: {
        grpc: { addr: "127.0.0.1:0" },
        http: { addr: "127.0.0.1:0", cors_allowed_origins: ["http://localhost:5173"] },
        shutdown_timeout: "5s",
      },
      data: { database: { source: databaseUrl, migrate: "up" } },
      kms: { root_key: testRootKey },
      log: { level: "silent" },
      auth: { enabled: false },
      ...extra,
    },
    "test",
  );
}

/** The real service, in process, on ephemeral ports; `extra` as for testConfig. */
export async function startTestApp(
  databaseUrl: string,
  extra: Record<string, unknown> = {},
): Promise<App> {
  return wireApp(testConfig(databaseUrl, extra), createLogger({ level: "silent", format: "json" }));
}

export interface TestAppOptions {
  /** Config sections replacing testConfig's (as its `extra`), for every instance. */
  config?: Record<string, unknown>;
  /** How many instances of the service share the database (default 1). */
  instances?: number;
  /** Connect the service through a databaseProxy (ctx.proxy), to take the database away. */
  proxy?: boolean;
}

export interface TestAppContext {
  /** The first instance. */
  readonly app: App;
  readonly apps: readonly App[];
  readonly db: TestDatabase;
}

type DatabaseProxy = Awaited<ReturnType<typeof databaseProxy>>;

/**
 * For a test file: a fresh database and the service on it (or several
 * instances, or behind a proxy), stopped and dropped afterwards.
 */
export function useTestApp(
  options: TestAppOptions & { proxy: true },
): TestAppContext & { readonly proxy: DatabaseProxy };
export function useTestApp(options?: TestAppOptions): TestAppContext;
export function useTestApp(options: TestAppOptions = {}) {
  // proxy: only with options.proxy (the overloads say so).
  const ctx = {} as { app: App; apps: App[]; db: TestDatabase; proxy: DatabaseProxy };
  beforeAll(async () => {
    ctx.apps = [];
    ctx.db = await createTestDatabase();
    if (options.proxy) ctx.proxy = await databaseProxy(new URL(ctx.db.url));
    const url = ctx.proxy?.url ?? ctx.db.url;
    for (let i = 0; i < (options.instances ?? 1); i++)
      ctx.apps.push(await startTestApp(url, options.config));
    ctx.app = ctx.apps[0]!;
  });
  afterAll(async () => {
    for (const app of ctx.apps ?? []) await app.stop();
    await ctx.proxy?.close();
    await ctx.db?.drop();
  });
  return ctx;
}

/**
 * For a test file: two instances of the service on one fresh database
 * (cross-instance behaviour); `config` as for useTestApp.
 */
export function useTwoInstances(config?: Record<string, unknown>): {
  readonly a: App;
  readonly b: App;
  readonly db: TestDatabase;
} {
  const ctx = useTestApp({ instances: 2, config });
  return {
    get a() {
      return ctx.apps[0]!;
    },
    get b() {
      return ctx.apps[1]!;
    },
    get db() {
      return ctx.db;
    },
  };
}

/**
 * For a test file whose tests each start the service with their own config:
 * one fresh database; `start(config)` runs an instance on it, stopped (with
 * every other) after the file, or with `perTest` after the test that
 * started it (a file of many instances then holds one's database
 * connections at a time, not all of theirs).
 */
export function useTestApps(opts: { perTest?: boolean } = {}): {
  readonly db: TestDatabase;
  start(config?: Record<string, unknown>): Promise<App>;
} {
  const apps: App[] = [];
  if (opts.perTest) {
    afterEach(async () => {
      for (const app of apps.splice(0)) await app.stop();
    });
  }
  const ctx = {
    db: undefined as unknown as TestDatabase,
    async start(config: Record<string, unknown> = {}) {
      const app = await startTestApp(ctx.db.url, config);
      apps.push(app);
      return app;
    },
  };
  beforeAll(async () => {
    ctx.db = await createTestDatabase();
  });
  afterAll(async () => {
    for (const app of apps) await app.stop();
    await ctx.db?.drop();
  });
  return ctx;
}
