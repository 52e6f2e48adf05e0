import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres } from "../internal/data/embedded.js";
import { createLogger } from "../internal/pkg/log/logger.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** A superuser URL on the server under test; each file creates its own database there. */
    adminDatabaseUrl: string;
  }
}

/** DATABASE_URL when set, else one embedded PostgreSQL for the whole run. */
export default async function setup(project: TestProject) {
  const external = process.env.DATABASE_URL;
  if (external) {
    project.provide("adminDatabaseUrl", external);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "kbts-test-pg-"));
  const pg = await startEmbeddedPostgres(dir, createLogger({ level: "silent", format: "json" }));
  project.provide("adminDatabaseUrl", pg.url);
  return async () => {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
