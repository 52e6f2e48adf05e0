import { join, resolve } from "node:path";
import { packageRoot } from "../pkg/package_root/package_root.js";

/**
 * The project's migrations/ folder, found from this module's location (the
 * same from the TypeScript sources and from dist/), so the server and
 * cmd/migrate find it whatever the working directory.
 */
export function defaultMigrationsDir(): string {
  const root = packageRoot(import.meta.url);
  return root === undefined ? resolve("migrations") : join(root, "migrations");
}
