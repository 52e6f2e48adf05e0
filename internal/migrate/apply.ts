import { join } from "node:path";
import { db as engineConnection } from "node-pg-migrate/db";
import { Migration } from "node-pg-migrate/migration";
import type { MigrationBuilder } from "node-pg-migrate/migrationBuilder";
import type pg from "pg";
import { isSetTransaction, transactionKind, type Script } from "./analyse.js";
import { clearInvalidIndexes, indexCheckStatement } from "./indexes.js";
import type { Step } from "./plan.js";
import { isConnectionLost } from "./connect.js";
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
  /**
   * The connection failed, not a statement: whether the statement in flight
   * (a COMMIT, say) took effect is unknown until `outcome` is read back.
   */
  connectionLost: boolean;
  /** What a new connection found afterwards; set only when the connection was lost. */
  outcome?: Outcome;
  /**
   * A file running its own transactions: `file:line` of the last statement
   * whose effect is final (committed, or rolled back by the file itself), and
   * of the BEGIN whose transaction the failure rolled back.
   */
  ownTransactions?: { finalThrough: string | null; rolledBackFrom: string | null };
}

/**
 * Read back after a lost connection: whether the migration is recorded
 * (recorded only with its last statement), or why that could not be told.
 */
export type Outcome = { recorded: boolean } | { unknown: string };

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

// The record's run_on is node-pg-migrate's NOW() in a `timestamp` column:
// UTC only if the session says so. Set just before the record, so the
// migration's own SQL runs in the session's time zone, as under psql.
const UTC_RECORD = "SET LOCAL TIME ZONE 'UTC'";

/**
 * Runs one step with node-pg-migrate's Migration, which writes BEGIN, the
 * file's statements, its INSERT or DELETE in pgmigrations and COMMIT. The
 * checksum rides on a setting that pgmigrations.checksum's default reads.
 *
 * A transactional file: the engine's SQL is collected and sent as one
 * multi-statement query, one round trip per migration; counting PostgreSQL's
 * per-statement completions still names the failing line. A file that cannot
 * run in a transaction goes through the engine statement by statement; its
 * concurrent index builds are checked by a last statement, before the record.
 */
export async function applyStep(
  client: pg.Client,
  dir: string,
  s: Step,
  script: Script,
  replyTimeoutMs: (statements: number) => number | undefined = () => undefined,
): Promise<{ ok: StepResult } | { failed: StepFailure }> {
  const started = performance.now();
  const checksum = s.direction === "up" ? s.migration.checksum : "";
  const setChecksum = (local: boolean) =>
    `SELECT set_config('${CHECKSUM_SETTING}', '${checksum}', ${local})`;
  const completions = countCompletions(client);
  let dropped: string[] = [];
  // What went to the server, one entry per query, in order.
  const sent: Chunk[] = [];
  try {
    if (script.transactional) {
      // A file may open with SET TRANSACTION, which must precede every other
      // query of the transaction, ours included.
      const first = script.statements.findIndex((st) => !isSetTransaction(st));
      const lead = first < 0 ? script.statements.length : first;
      const body = chunk(
        [
          ...script.statements.slice(0, lead),
          setChecksum(true),
          ...script.statements.slice(lead),
          UTC_RECORD,
        ],
        script,
      );
      const engineSql = await engineSteps(client, dir, s, [body.sql], true);
      const whole = concat(
        engineSql.map((sql) => (sql === body.sql ? body : chunk([sql], script))),
      );
      sent.push(whole);
      completions.reset();
      // The server bounds each statement of a multi-statement query, so the
      // client's wait grows with their number.
      const query_timeout = replyTimeoutMs(whole.statements.length);
      await client.query({ text: whole.sql, ...(query_timeout ? { query_timeout } : {}) });
    } else {
      const cleared = await clearInvalidIndexes(client, script.indexes);
      dropped = cleared.dropped;
      const before = cleared.invalidBefore;
      const chunks = [
        chunk([setChecksum(false)], script),
        ...script.statements.map((st) => chunk([st], script)),
        ...(script.indexes.length > 0
          ? [chunk([indexCheckStatement(script.indexes, before)], script)]
          : []),
        chunk(["SET TIME ZONE 'UTC'"], script),
      ];
      await engineSteps(
        client,
        dir,
        s,
        chunks.map((c) => c.sql),
        false,
        (sql) => {
          // Our chunks go in order (no BEGIN outside a transaction), then the record.
          sent.push(chunks[sent.length] ?? chunk([sql], script));
          completions.reset();
        },
      );
    }
  } catch (err) {
    const failed = failure(s, script, sent, completions.count(), err, dropped);
    // A failed transaction stays open (aborted) until told otherwise; so does
    // one the file opened.
    if (script.transactional || script.ownTransactions)
      await client.query("ROLLBACK").catch(() => undefined);
    return { failed };
  } finally {
    completions.stop();
    if (!script.transactional) {
      await client
        .query(`SELECT set_config('${CHECKSUM_SETTING}', '', false); RESET TimeZone`)
        .catch(() => undefined);
    }
  }
  const ms = Math.round(performance.now() - started);
  return { ok: { name: s.name, direction: s.direction, file: s.file, ms, dropped } };
}

/**
 * node-pg-migrate's Migration applied to `steps`: run through `client` as it
 * sends them (`onQuery` hears each first), or only collected when `collect`:
 * the SQL it would send, in order.
 */
async function engineSteps(
  client: pg.Client,
  dir: string,
  s: Step,
  steps: string[],
  collect: boolean,
  onQuery?: (sql: string) => void,
): Promise<string[]> {
  const collected: string[] = [];
  const connection = engineConnection(client, quiet);
  const run = connection.query.bind(connection);
  connection.query = ((text: string) => {
    collected.push(text);
    if (collect) return Promise.resolve({ rows: [], rowCount: 0 });
    onQuery?.(text);
    return run(text);
  }) as typeof connection.query;
  const action = (pgm: MigrationBuilder) => {
    // Collected SQL is wrapped in a transaction; SQL run here is not.
    if (!collect) pgm.noTransaction();
    for (const sql of steps) pgm.sql(sql);
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
  return collected;
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
    // The semicolon on its own line: a statement may end in a -- comment.
    sql += `${text}\n;\n`;
  }
  // node-pg-migrate appends a semicolon unless the text ends with one.
  return { sql: sql.trimEnd(), statements };
}

/** Chunks joined into one query, offsets shifted. */
function concat(chunks: Chunk[]): Chunk {
  let sql = "";
  const statements: Chunk["statements"] = [];
  for (const c of chunks) {
    if (sql) sql += "\n";
    statements.push(...c.statements.map((x) => ({ ...x, offset: x.offset + sql.length })));
    sql += c.sql;
  }
  return { sql, statements };
}

/** Counts the statements PostgreSQL completes, per query (pg reports each of a multi-statement query). */
function countCompletions(client: pg.Client) {
  let completed = 0;
  const protocol = (client as unknown as { connection: NodeJS.EventEmitter }).connection;
  const onComplete = () => completed++;
  protocol.on("commandComplete", onComplete);
  return {
    count: () => completed,
    reset: () => {
      completed = 0;
    },
    stop: () => protocol.off("commandComplete", onComplete),
  };
}

function failure(
  s: Step,
  script: Script,
  sent: Chunk[],
  completed: number,
  err: unknown,
  dropped: string[],
): StepFailure {
  const e = err as Error & { position?: string; code?: string };
  const fileStatements = (entries: Chunk["statements"]) =>
    entries.filter((x) => x.index >= 0).length;
  let at = s.file;
  let applied = 0;
  const last = sent.at(-1);
  if (last) {
    // The statement that failed is the one after those that completed.
    const i = Math.min(completed, last.statements.length - 1);
    const failing = last.statements[i]!;
    applied =
      sent.slice(0, -1).reduce((n, c) => n + fileStatements(c.statements), 0) +
      fileStatements(last.statements.slice(0, i));
    const st = script.statements[failing.index];
    if (st) {
      const position = e.position ? Number(e.position) - 1 - failing.offset : -1;
      const inStatement = position >= 0 ? lineAt(st.sql, position) - 1 : 0;
      at = `${s.file}:${st.line + inStatement}`;
    }
  }
  const own = script.ownTransactions ? ownOutcome(s, script, applied) : undefined;
  return {
    name: s.name,
    direction: s.direction,
    at,
    message: e.message,
    code: typeof e.code === "string" && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined,
    transactional: script.transactional,
    statementsApplied: script.transactional ? 0 : (own?.committed ?? applied),
    dropped,
    connectionLost: isConnectionLost(err),
    ...(own ? { ownTransactions: own.where } : {}),
  };
}

/**
 * Of a file running its own transactions, the first `completed` statements
 * completed: those outside its blocks committed one by one, those inside a
 * block only if its COMMIT completed; a block still open was rolled back.
 */
function ownOutcome(s: Step, script: Script, completed: number) {
  let committed = 0;
  let inBlock = 0;
  let open: Statement | undefined;
  let final: Statement | undefined;
  for (const st of script.statements.slice(0, completed)) {
    const kind = transactionKind(st);
    if (kind === "TRANS_STMT_BEGIN" || kind === "TRANS_STMT_START") {
      open = st;
      inBlock = 0;
    } else if (kind === "TRANS_STMT_COMMIT" || kind === "TRANS_STMT_ROLLBACK") {
      if (kind === "TRANS_STMT_COMMIT" && open) committed += inBlock;
      open = undefined;
      final = st;
    } else if (kind) {
      // SAVEPOINT, RELEASE, ROLLBACK TO: inside the block, nothing final yet.
    } else if (open) inBlock++;
    else {
      committed++;
      final = st;
    }
  }
  const where = (st: Statement | undefined) => (st ? `${s.file}:${st.line}` : null);
  return { committed, where: { finalThrough: where(final), rolledBackFrom: where(open) } };
}
