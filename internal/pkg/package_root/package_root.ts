import { existsSync, readFileSync } from "node:fs";
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

/** The `version` of the package.json above `moduleUrl`: the release running; "unknown" without one. */
export function packageVersion(moduleUrl: string): string {
  const root = packageRoot(moduleUrl);
  try {
    const pkg = JSON.parse(readFileSync(join(root!, "package.json"), "utf8")) as {
      version?: unknown;
    };
    return typeof pkg.version === "string" && pkg.version ? pkg.version : "unknown";
  } catch {
    return "unknown";
  }
}
