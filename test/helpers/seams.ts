import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);

/**
 * The version of `pkg` as installed, as `from` (a package that depends on
 * it) resolves it: its package.json, found above its entry point (not every
 * package exports its package.json).
 */
export function installedVersion(pkg: string, from?: string): string {
  const resolver = from ? createRequire(require.resolve(from)) : require;
  for (let dir = dirname(resolver.resolve(pkg)); dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, "package.json");
    if (!existsSync(file)) continue;
    const found = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version: string };
    if (found.name === pkg) return found.version;
  }
  throw new Error(`no package.json found for ${pkg}`);
}

/** Whether `version` lies in [from, below), compared by major.minor. */
export function within(
  version: string,
  range: { from: readonly number[]; below: readonly number[] },
): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  const at = major * 1000 + minor;
  const key = ([a = 0, b = 0]: readonly number[]) => a * 1000 + b;
  return at >= key(range.from) && at < key(range.below);
}
