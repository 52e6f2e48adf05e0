import { readFileSync } from "node:fs";
import { fromJson, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";
import { parse as parseYaml } from "yaml";
import { BootstrapSchema, type Bootstrap } from "./conf_pb.js";
import { defaults } from "./defaults.js";
import { isDuration, toProtoDuration } from "./duration.js";
import { applyEnv, directSourceLeftBehind } from "./env.js";

export type Config = Bootstrap;

/** A configuration problem, described in one line that names the field. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

type Tree = Record<string, unknown>;

/**
 * Reads a YAML config file, fills defaults, applies environment overrides,
 * and checks it against conf.proto (unknown keys refused) and its
 * buf.validate rules.
 */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(
      `config ${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text) ?? {};
  } catch (err) {
    throw new ConfigError(`config ${path}: not valid YAML: ${firstLine((err as Error).message)}`);
  }
  return parseConfig(parsed, path, env);
}

/** Like loadConfig, for a tree already parsed. `origin` names it in errors. */
export function parseConfig(tree: unknown, origin: string, env: NodeJS.ProcessEnv = {}): Config {
  if (!isTree(tree)) throw new ConfigError(`config ${origin}: the top level must be a mapping`);
  const merged = merge(structuredClone(defaults) as Tree, tree);
  refuseDevelopmentKeyInProduction(tree, env, origin);
  const database = isTree(merged.data) && isTree(merged.data.database) ? merged.data.database : {};
  const leftBehind = directSourceLeftBehind(database.direct_source, env);
  if (leftBehind) throw new ConfigError(`config ${origin}: ${leftBehind}`);
  const fromEnv = applyEnv(merged, env);
  // A field an environment variable set is that variable's fault, not the file's.
  const at = (field: string) => {
    const variable = fromEnv.get(field);
    return variable ? `environment ${variable} (${field})` : `config ${origin}: ${field}`;
  };
  checkShape(BootstrapSchema, merged, "", at);
  const config = fromJson(BootstrapSchema, merged as JsonValue);
  const result = createValidator().validate(BootstrapSchema, config);
  if (result.kind === "invalid") {
    const v = result.error.violations[0]!;
    throw new ConfigError(`${at(pathToString(v.field) || "(config)")}: ${v.message}`);
  }
  if (result.kind === "error") throw new ConfigError(`config ${origin}: ${result.error.message}`);
  refuseUnsafeInProduction(config, env, at);
  return config;
}

// protobuf-es names the message type, not the path, when a key is unknown or a
// value has the wrong type; walk the tree first so the error names the field.
function checkShape(
  schema: DescMessage,
  tree: unknown,
  path: string,
  at: (field: string) => string,
): void {
  if (!isTree(tree)) throw new ConfigError(`${at(path)}: must be a mapping`);
  for (const [key, value] of Object.entries(tree)) {
    const name = path ? `${path}.${key}` : key;
    const field = schema.fields.find((f) => f.name === key || f.jsonName === key);
    if (!field) {
      const known = schema.fields.map((f) => f.name).join(", ");
      throw new ConfigError(`${at(name)}: unknown field (expected one of: ${known})`);
    }
    if (value === null) continue;
    if (field.fieldKind === "message" && field.message.file.proto.package === "conf") {
      checkShape(field.message, value, name, at);
      continue;
    }
    if (field.fieldKind === "message" && field.message.typeName === "google.protobuf.Duration") {
      tree[key] = toProtoDuration(value);
      if (!isDuration(tree[key]))
        throw new ConfigError(
          `${at(name)}: not a duration (write one such as 10s, 1m30s or 250ms)`,
        );
    }
    try {
      fromJson(schema, { [key]: tree[key] } as JsonValue);
    } catch (err) {
      const detail = (err as Error).message.replace(/^cannot decode [^:]*: /, "");
      throw new ConfigError(`${at(name)}: ${detail}`);
    }
  }
}

// configs/config.yaml carries a root key so `npm start` works; a key written
// in a config file is a development convenience that production must not use.
function refuseDevelopmentKeyInProduction(
  tree: Tree,
  env: NodeJS.ProcessEnv,
  origin: string,
): void {
  const production = isProduction(env);
  const inline =
    isTree(tree.kms) && typeof tree.kms.root_key === "string" && tree.kms.root_key !== "";
  if (production && inline && !env.KMS_ROOT_KEY && !env.KMS_ROOT_KEY_FILE) {
    throw new ConfigError(
      `config ${origin}: kms.root_key: a root key written in the config is for development only; in production set KMS_ROOT_KEY or kms.root_key_file`,
    );
  }
  const previous = isTree(tree.kms) ? tree.kms.previous_root_key : undefined;
  const inlinePrevious =
    isTree(previous) && typeof previous.root_key === "string" && previous.root_key !== "";
  if (
    production &&
    inlinePrevious &&
    !env.KMS_PREVIOUS_ROOT_KEY &&
    !env.KMS_PREVIOUS_ROOT_KEY_FILE
  ) {
    throw new ConfigError(
      `config ${origin}: kms.previous_root_key.root_key: a root key written in the config is for development only; in production set KMS_PREVIOUS_ROOT_KEY or kms.previous_root_key.root_key_file`,
    );
  }
}

// The root key configs/config.yaml ships with, public in the repository.
const DEVELOPMENT_ROOT_KEY = Buffer.from("MsZ2yR01w1aELN627qWLsX9WiAktiTRyNKumwPZhk+I=", "base64");

// Checked on the final configuration, defaults and environment applied, so
// that no spelling of the file (a null, an empty section) dodges it.
function refuseUnsafeInProduction(
  config: Config,
  env: NodeJS.ProcessEnv,
  at: (field: string) => string,
): void {
  if (!isProduction(env)) return;
  if (config.auth?.enabled !== true) {
    throw new ConfigError(
      `${at("auth.enabled")}: authentication must be on in production (APP_ENV/NODE_ENV=production)`,
    );
  }
  const key = config.kms?.rootKey ? Buffer.from(config.kms.rootKey, "base64") : undefined;
  if (key?.equals(DEVELOPMENT_ROOT_KEY)) {
    throw new ConfigError(
      `${at("kms.root_key")}: the development root key from configs/config.yaml must not be used in production`,
    );
  }
}

function isProduction(env: NodeJS.ProcessEnv): boolean {
  return env.APP_ENV === "production" || env.NODE_ENV === "production";
}

function merge(base: Tree, over: Tree): Tree {
  for (const [key, value] of Object.entries(over)) {
    // An empty YAML key (`auth:` with its lines commented out) means "the
    // default", never "nothing": it must not switch a safe default off.
    if (value === null) continue;
    const current = base[key];
    base[key] = isTree(current) && isTree(value) ? merge(current, value) : value;
  }
  return base;
}

function isTree(value: unknown): value is Tree {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function firstLine(text: string): string {
  return text.split("\n")[0] ?? text;
}
