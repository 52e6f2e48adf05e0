import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The folder holding the package.json nearest above `moduleUrl` (a module's
 * import.meta.url): the project's root from its TypeScript sources and from
 * dist/ alike, whatever the working directory. Undefined when there is none.
 */
export function packageRoot(moduleUrl: string): string | undefined {
  let dir = dirname(fileURLToPath(moduleUrl));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
  return dir;
}
