import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

/** The version of `pkg` as installed (its package.json). */
export function installedVersion(pkg: string): string {
  return (require(`${pkg}/package.json`) as { version: string }).version;
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
