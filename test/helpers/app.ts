import { afterAll, beforeAll } from "vitest";
import { parseConfig, type Config } from "../../internal/conf/load.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { wireApp, type App } from "../../cmd/server/wire.js";
import { createTestDatabase, type TestDatabase } from "./db.js";

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

/** The real service, in process, on ephemeral ports. */
export async function startTestApp(databaseUrl: string): Promise<App> {
  const conf = testConfig(databaseUrl);
  return wireApp(conf, createLogger({ level: "silent", format: "json" }));
}

/** For a test file: a fresh database and the service on it, stopped and dropped afterwards. */
export function useTestApp(): { readonly app: App; readonly db: TestDatabase } {
  const ctx = {} as { app: App; db: TestDatabase };
  beforeAll(async () => {
    ctx.db = await createTestDatabase();
    ctx.app = await startTestApp(ctx.db.url);
  });
  afterAll(async () => {
    await ctx.app?.stop();
    await ctx.db?.drop();
  });
  return ctx;
}

/** For a test file: two instances of the service on one fresh database (cross-instance behaviour). */
export function useTwoInstances(): { readonly a: App; readonly b: App; readonly db: TestDatabase } {
  const ctx = {} as { a: App; b: App; db: TestDatabase };
  beforeAll(async () => {
    ctx.db = await createTestDatabase();
    ctx.a = await startTestApp(ctx.db.url);
    ctx.b = await startTestApp(ctx.db.url);
  });
  afterAll(async () => {
    await ctx.a?.stop();
    await ctx.b?.stop();
    await ctx.db?.drop();
  });
  return ctx;
}
