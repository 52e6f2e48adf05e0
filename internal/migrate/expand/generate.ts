import { join } from "node:path";
import {
  checkMigrationName,
  checkVersionFree,
  createdHeader,
  migrationStamp,
  writeAllOrNone,
} from "../create.js";
import { parsePlpgsql, loadParsers } from "../lint/parser.js";
import { SqlSyntaxError, splitStatements } from "../sql.js";
import { ExpandOptionError } from "./errors.js";
import { EXPAND_OPTIONS, type ExpandValues, type Kind, type Phases } from "./kind.js";
import { KINDS } from "./kinds.js";

// `migrate create NAME --expand KIND`: four files, the expand pair at the
// stamp and the contract pair one second later, written all or none.

export interface ExpandRequest {
  dir: string;
  name: string;
  /** The KIND given to --expand. */
  kind: string;
  values: ExpandValues;
  now?: Date;
}

/** The four paths written: expand up, expand down, contract up, contract down. */
export interface ExpandFiles {
  expandUp: string;
  expandDown: string;
  contractUp: string;
  contractDown: string;
}

/** Refuses what the request gets wrong (ExpandOptionError), else writes the four files. */
export async function createExpandMigration(req: ExpandRequest): Promise<ExpandFiles> {
  checkMigrationName(req.name);
  const kind = kindOf(req.kind);
  checkOptions(kind, req.values);
  await loadParsers();
  const phases = kind.build(req.values);
  const now = req.now ?? new Date();
  const expandStamp = migrationStamp(now);
  const contractStamp = migrationStamp(new Date(now.getTime() + 1000));
  const expand = `${expandStamp}_${req.name}_expand`;
  const contract = `${contractStamp}_${req.name}_contract`;
  const header = (base: string, direction: "up" | "down", lines: string[]) =>
    `${createdHeader(base, direction, now)}${lines.map((l) => `-- ${l}\n`).join("")}`;
  const made = `Made by \`migrate create --expand ${kind.name}\`: ${phases.summary.join("; ")}.`;
  const texts = {
    expandUp: file(
      header(expand, "up", [
        made,
        "Expand: backward compatible. The previous release keeps reading and writing the",
        "old column(s); a trigger keeps old and new in step both ways (a write that",
        "changes both: the new side wins); the backfill (last) fills the rows before.",
        `Completed by ${contract} once no instance of the previous release runs.`,
        "migrate:phase expand",
      ]),
      phases.expandUp,
    ),
    expandDown: file(
      header(expand, "down", ["Undoes the expand: the trigger, its function, the new column(s)."]),
      phases.expandDown,
    ),
    contractUp: file(
      header(contract, "up", [
        made,
        `Contract: completes ${expand}; apply once no instance of the previous release runs.`,
        `migrate:phase contract ${expandStamp}`,
      ]),
      phases.contractUp,
    ),
    contractDown: file(
      header(contract, "down", [
        "Undoes the contract: what the expand left, the old side refilled from the new,",
        "so that the previous release can run again.",
      ]),
      phases.contractDown,
    ),
  };
  const paths: ExpandFiles = {
    expandUp: join(req.dir, `${expand}.up.sql`),
    expandDown: join(req.dir, `${expand}.down.sql`),
    contractUp: join(req.dir, `${contract}.up.sql`),
    contractDown: join(req.dir, `${contract}.down.sql`),
  };
  for (const key of Object.keys(texts) as (keyof ExpandFiles)[])
    checkParses(texts[key], paths[key], phases[key], fragmentOptions(kind, req.values));
  checkVersionFree(req.dir, expandStamp);
  checkVersionFree(req.dir, contractStamp);
  writeAllOrNone(
    (Object.keys(paths) as (keyof ExpandFiles)[]).map((k) => ({ path: paths[k], text: texts[k] })),
  );
  return paths;
}

/** The kinds, as a usage message lists them. */
export function kindNames(): string {
  return [...KINDS.keys()].join(", ");
}

function kindOf(name: string): Kind {
  const kind = KINDS.get(name);
  if (!kind)
    throw new ExpandOptionError(
      `--expand ${JSON.stringify(name)}: unknown kind; the kinds are ${kindNames()}`,
    );
  return kind;
}

/** Every required option given, none that the kind does not take. */
function checkOptions(kind: Kind, values: ExpandValues): void {
  const takes = [...kind.required, ...kind.optional];
  const list = takes.map((o) => `--${o}`).join(", ");
  for (const option of EXPAND_OPTIONS)
    if (values[option] !== undefined && !takes.includes(option))
      throw new ExpandOptionError(
        `--${option} does not go with --expand ${kind.name} (it takes ${list})`,
      );
  for (const option of kind.required)
    if (values[option] === undefined)
      throw new ExpandOptionError(
        `--expand ${kind.name} needs --${option} (it takes ${list}; see docs/migrations.md)`,
      );
}

function file(header: string, statements: string[]): string {
  return `${header}\n${statements.join("\n\n")}\n`;
}

// The options holding SQL the operator wrote, named when a file does not parse.
function fragmentOptions(kind: Kind, values: ExpandValues): string {
  const sql = ["type", "old-type", "using", "back", "fill", "into", "join"] as const;
  const given = sql.filter(
    (o) => values[o] !== undefined && [...kind.required, ...kind.optional].includes(o),
  );
  return given.map((o) => `--${o}`).join(", ");
}

/**
 * The file as PostgreSQL parses it: exactly the statements generated (a
 * fragment adds none and swallows none), each function body valid PL/pgSQL.
 * Each fragment was checked alone already; this is the whole file's check.
 */
function checkParses(text: string, path: string, statements: string[], options: string): void {
  const refuse = (why: string) =>
    new ExpandOptionError(`${path} as generated ${why}: check ${options}; nothing was written`);
  let split;
  try {
    split = splitStatements(text, path);
  } catch (err) {
    if (!(err instanceof SqlSyntaxError)) throw err;
    throw refuse(`does not parse (${err.message.replace(/^[^:]*:/, "line ")})`);
  }
  if (split.length !== statements.length)
    throw refuse(`parses as ${split.length} statements, not ${statements.length}`);
  for (const st of split)
    if (st.node.CreateFunctionStmt && parsePlpgsql(st.sql) === undefined)
      throw refuse(`has a trigger function (line ${st.line}) whose PL/pgSQL does not parse`);
}

export { ExpandOptionError };
export type { Phases };
