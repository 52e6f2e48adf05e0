type Tree = Record<string, unknown>;

// The environment variables that override the file, and where they land.
// A root-key variable replaces every root-key source in the file, so that
// exactly one source remains.
const overrides: { env: string; path: string[]; clears?: string[] }[] = [
  { env: "DATABASE_URL", path: ["data", "database", "source"] },
  { env: "DATABASE_DIRECT_URL", path: ["data", "database", "direct_source"] },
  { env: "KMS_ROOT_KEY", path: ["kms", "root_key"], clears: ["root_key_file", "seed", "salt"] },
  {
    env: "KMS_ROOT_KEY_FILE",
    path: ["kms", "root_key_file"],
    clears: ["root_key", "seed", "salt"],
  },
  {
    env: "KMS_PREVIOUS_ROOT_KEY",
    path: ["kms", "previous_root_key", "root_key"],
    clears: ["root_key_file", "seed", "salt"],
  },
  {
    env: "KMS_PREVIOUS_ROOT_KEY_FILE",
    path: ["kms", "previous_root_key", "root_key_file"],
    clears: ["root_key", "seed", "salt"],
  },
  {
    env: "KMS_PREVIOUS_ROOT_KEY_UNTIL",
    path: ["kms", "previous_root_key", "until"],
  },
  { env: "LOG_LEVEL", path: ["log", "level"] },
  { env: "GRPC_ADDR", path: ["server", "grpc", "addr"] },
  { env: "HTTP_ADDR", path: ["server", "http", "addr"] },
];

export const overridingVariables = overrides.map((o) => o.env);

/**
 * Applies environment overrides to a parsed config tree, in place. Returns
 * the variable each overridden field (`kms.root_key`) came from, so that an
 * error in it names the variable rather than the file.
 */
export function applyEnv(tree: Tree, env: NodeJS.ProcessEnv): Map<string, string> {
  const applied = new Map<string, string>();
  for (const { env: name, path, clears = [] } of overrides) {
    const value = env[name];
    if (value === undefined || value === "") continue;
    const parent = ensurePath(tree, path.slice(0, -1));
    for (const key of clears) delete parent[key];
    parent[path[path.length - 1]!] = value;
    applied.set(path.join("."), name);
  }
  return applied;
}

/**
 * Why DATABASE_URL cannot replace the file's source here, or undefined: the
 * file's direct_source would stay, and may name another database (or the
 * old one). Both URLs must then come from the environment.
 */
export function directSourceLeftBehind(
  fileDirectSource: unknown,
  env: NodeJS.ProcessEnv,
): string | undefined {
  if (!env.DATABASE_URL || env.DATABASE_DIRECT_URL || !fileDirectSource) return undefined;
  return "DATABASE_URL replaces data.database.source, but data.database.direct_source from the config would stay and may name another database: set DATABASE_DIRECT_URL too (the same database, reached directly)";
}

function ensurePath(tree: Tree, path: string[]): Tree {
  let node = tree;
  for (const key of path) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Tree;
  }
  return node;
}
