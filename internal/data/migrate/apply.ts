import { join } from "node:path";
import { db as engineConnection } from "node-pg-migrate/db";
import { Migration } from "node-pg-migrate/migration";
import type { MigrationBuilder } from "node-pg-migrate/migrationBuilder";
import type pg from "pg";
import type { Script } from "./analyse.js";
import { dropInvalidLeftovers, indexCheckStatement, invalidBefore } from "./indexes.js";
import type { Step } from "./plan.js";
import { lineAt, type Statement } from "./sql.js";
import { CHECKSUM_SETTING } from "./state.js";

/** A step that ran: how long it took. */
export interface StepResult {
  name: string;
  direction: "up" | "down";
  file: string;
  ms: number;
  /** INVALID indexes left by an interrupted earlier attempt, dropped before this one. */
  dropped: string[];
}

/** The step that failed: where, PostgreSQL's words, and what it left. */
export interface StepFailure {
  name: string;
  direction: "up" | "down";
  /** `file:line` of the failing statement, or the file when unknown. */
  at: string;
  /** PostgreSQL's message (or the client's). */
  message: string;
  /** SQLSTATE, when PostgreSQL answered. */
  code: string | undefined;
  /** Rolled back whole (transactional), or statements before the failing one stay applied. */
  transactional: boolean;
  statementsApplied: number;
  dropped: string[];
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

// The record's run_on is node-pg-migrate's NOW() in a `timestamp` column:
// UTC only if the session says so. Set just before the record, so the
// migration's own SQL runs in the session's time zone, as under psql.
const UTC_RECORD = "SET LOCAL TIME ZONE 'UTC'";

/**
 * Runs one step with node-pg-migrate's Migration: BEGIN, the file's
 * statements, its INSERT or DELETE in pgmigrations, COMMIT. The checksum rides
 * on a setting that pgmigrations.checksum's default reads. A transactional
 * file goes as one multi-statement query (BEGIN, file, record, COMMIT: the
 * round trips psql makes); counting PostgreSQL's per-statement completions
 * still names the failing line. A file that cannot run in a transaction goes
 * statement by statement; its concurrent index builds are checked by a last
 * statement, before the record.
 */
export async function applyStep(
  client: pg.Client,
  dir: string,
  s: Step,
  script: Script,
): Promise<{ ok: StepResult } | { failed: StepFailure }> {
  const started = performance.now();
  const checksum = s.direction === "up" ? s.migration.checksum : "";
  const setChecksum = (local: boolean) =>
    `SELECT set_config('${CHECKSUM_SETTING}', '${checksum}', ${local})`;
  const connection = engineConnection(client, quiet);
  const sent = track(client, connection);
  let dropped: string[] = [];
  let chunks: Chunk[] = [];
  try {
    if (script.transactional) {
      chunks = [chunk([setChecksum(true), ...script.statements, UTC_RECORD], script)];
    } else {
      dropped = await dropInvalidLeftovers(client, script.indexes);
      const before = await invalidBefore(client, script.indexes);
      chunks = [
        chunk([setChecksum(false)], script),
        ...script.statements.map((st) => chunk([st], script)),
        ...(script.indexes.length > 0
          ? [chunk([indexCheckStatement(script.indexes, before)], script)]
          : []),
        chunk(["SET TIME ZONE 'UTC'"], script),
      ];
    }
    sent.reset();
    const action = (pgm: MigrationBuilder) => {
      if (!script.transactional) pgm.noTransaction();
      for (const c of chunks) pgm.sql(c.sql);
    };
    // Two functions: node-pg-migrate reads up === down as "infer the down".
    const actions = { up: action, down: (pgm: MigrationBuilder) => action(pgm) };
    const migration = new Migration(
      connection,
      join(dir, `${s.name}.sql`),
      actions,
      {
        dbClient: client,
        dir,
        migrationsTable: "pgmigrations",
        migrationsSchema: "public",
        direction: s.direction,
        singleTransaction: false,
      },
      undefined,
      quiet,
    );
    await migration.apply(s.direction);
  } catch (err) {
    const failed = failure(s, script, chunks, sent, err, dropped);
    // node-pg-migrate sends no ROLLBACK when a statement fails.
    if (script.transactional) await client.query("ROLLBACK").catch(() => undefined);
    return { failed };
  } finally {
    sent.stop();
    if (!script.transactional) {
      await client
        .query(`SELECT set_config('${CHECKSUM_SETTING}', '', false); RESET TimeZone`)
        .catch(() => undefined);
    }
  }
  const ms = Math.round(performance.now() - started);
  return { ok: { name: s.name, direction: s.direction, file: s.file, ms, dropped } };
}

/** SQL sent as one query, and which file statement each of its statements is (-1: ours). */
interface Chunk {
  sql: string;
  statements: { index: number; offset: number }[];
}

function chunk(parts: (string | Statement)[], script: Script): Chunk {
  let sql = "";
  const statements: Chunk["statements"] = [];
  for (const part of parts) {
    const text = typeof part === "string" ? part : part.sql;
    statements.push({
      index: typeof part === "string" ? -1 : script.statements.indexOf(part),
      offset: sql.length,
    });
    sql += `${text};\n`;
  }
  // node-pg-migrate appends a semicolon unless the text ends with one.
  return { sql: sql.trimEnd(), statements };
}

/** How many queries node-pg-migrate sent, and how many statements of the last one completed. */
function track(client: pg.Client, connection: ReturnType<typeof engineConnection>) {
  let sent = 0;
  let completed = 0;
  const query = connection.query.bind(connection);
  connection.query = ((text: string, values?: unknown[]) => {
    sent++;
    completed = 0;
    return query(text, values as never);
  }) as typeof connection.query;
  // pg's Connection reports each statement of a multi-statement query.
  const protocol = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  const onComplete = () => completed++;
  protocol.on("commandComplete", onComplete);
  return {
    sent: () => sent,
    completed: () => completed,
    reset: () => {
      sent = 0;
      completed = 0;
    },
    stop: () => protocol.off("commandComplete", onComplete),
  };
}

function failure(
  s: Step,
  script: Script,
  chunks: Chunk[],
  sent: ReturnType<typeof track>,
  err: unknown,
  dropped: string[],
): StepFailure {
  const e = err as Error & { position?: string; code?: string };
  // node-pg-migrate sends BEGIN (when transactional), our chunks in order,
  // then the record and COMMIT.
  const k = sent.sent() - 1 - (script.transactional ? 1 : 0);
  const fileStatements = (c: Chunk, upTo = c.statements.length) =>
    c.statements.slice(0, upTo).filter((x) => x.index >= 0).length;
  let at = s.file;
  // Before any chunk ran, or at the record after all of them.
  let applied = k < 0 ? 0 : script.statements.length;
  if (k >= 0 && k < chunks.length) {
    const c = chunks[k]!;
    const inChunk = Math.min(sent.completed(), c.statements.length - 1);
    applied =
      chunks.slice(0, k).reduce((n, x) => n + fileStatements(x), 0) + fileStatements(c, inChunk);
    const target = c.statements[inChunk]!;
    const st = script.statements[target.index];
    if (st) {
      const position = e.position ? Number(e.position) - 1 - target.offset : -1;
      const inStatement = position >= 0 ? lineAt(st.sql, position) - 1 : 0;
      at = `${s.file}:${st.line + inStatement}`;
    }
  }
  return {
    name: s.name,
    direction: s.direction,
    at,
    message: e.message,
    code: typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined,
    transactional: script.transactional,
    statementsApplied: script.transactional ? 0 : applied,
    dropped,
  };
}
