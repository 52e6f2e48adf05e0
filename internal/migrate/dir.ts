import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The project's migrations/ folder, found from this module's location (the
 * same from the TypeScript sources and from dist/), so the server and
 * cmd/migrate find it whatever the working directory.
 */
export function defaultMigrationsDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) return resolve("migrations");
    dir = parent;
  }
  return join(dir, "migrations");
}
