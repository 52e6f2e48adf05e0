import { existsSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";

// The first import of every entry point (server, migrate, kms), so that on an
// older Node (a machine's own `node`, run without npm) the program stops with
// one line saying what to run instead, before its modules load and fail
// somewhere less clear. It imports nothing but Node's own modules for that reason.
// `npm install` brings the Node the project runs on (the devDependency
// `node`), and npm scripts and npx put it first on PATH.

/** The Node major the project runs on; package.json's engines and .nvmrc say the same (a unit test holds them to it). */
export const NODE_MAJOR = 24;

/** `arg` as a POSIX shell reads it back. */
const quote = (arg: string) =>
  /^[\w./:=@%+,-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;

/** The project `script` belongs to, as npm finds it: the nearest folder above with a package.json. */
function projectOf(script: string): string {
  for (let dir = dirname(script); dir !== dirname(dir); dir = dirname(dir))
    if (existsSync(join(dir, "package.json"))) return dir;
  return dirname(script);
}

/**
 * The refusal for Node `version` (as `process.versions.node`) running
 * `script` with `args` (of the project in `root`, by default the one npm
 * would find), or undefined when that Node will do.
 */
export function nodeRefusal(
  version: string,
  script: string,
  args: readonly string[],
  cwd: string,
  root?: string,
): string | undefined {
  if (Number(version.split(".")[0]) >= NODE_MAJOR) return undefined;
  root ??= projectOf(script);
  const inside = !relative(root, cwd).startsWith("..");
  // npx finds the checkout's Node from anywhere inside it; from outside it
  // would fetch one, so it is named with --prefix.
  const run = inside
    ? ["npx", "node", relative(cwd, script)]
    : ["npm", "exec", `--prefix=${root}`, "--", "node", script];
  const command = [...run, ...args].map(quote).join(" ");
  return (
    `${basename(dirname(script))}: needs Node ${NODE_MAJOR} or newer, this is Node ${version}; ` +
    `run it on the Node that npm install brings: ${command}`
  );
}

const refusal = nodeRefusal(
  process.versions.node,
  process.argv[1] ?? "",
  process.argv.slice(2),
  process.cwd(),
);
if (refusal) {
  process.stderr.write(`${refusal}\n`);
  process.exit(2);
}
