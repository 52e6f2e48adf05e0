import type pg from "pg";
import { sqlstateOf } from "../../pkg/dberr/dberr.js";
import { oneLine, STATEMENT_CHARS } from "../blockers.js";
import { backendPid } from "../connect.js";
import type { Statement } from "../sql.js";

// What one statement did to the relations it met: the locks it took, how
// long it ran, and the tables it rewrote (a new relfilenode).

/** A lock on a relation; `source` says how we know it. */
export interface TracedLock {
  /** As PostgreSQL's documentation names it: ACCESS EXCLUSIVE, SHARE UPDATE EXCLUSIVE… */
  mode: string;
  relation: string;
  /**
   * held: read from pg_locks inside the statement's own transaction;
   * sampled: seen from a second session while the statement ran;
   * known: what PostgreSQL documents for the statement kind (too quick to sample).
   */
  source: "held" | "sampled" | "known";
}

export interface StatementTrace {
  line: number;
  /** The statement on one line, cut at STATEMENT_CHARS. */
  sql: string;
  locks: TracedLock[];
  ms: number;
  /** Tables (and materialized views) whose relfilenode changed: rewritten. */
  rewrote: string[];
  /** Set when the statement failed. */
  error?: string;
  /** Its SQLSTATE, when PostgreSQL answered. */
  code?: string;
}

interface Relation {
  name: string;
  kind: string;
  filenode: string;
}

// User relations only: locks our own probes take on the catalogs, and those a
// statement takes on them, are noise to an operator.
const RELATIONS = `SELECT c.oid::text AS oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name,
    c.relkind::text AS kind, c.relfilenode::text AS filenode
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`;

const LOCKS = `SELECT relation::text AS oid, mode FROM pg_locks
  WHERE pid = $1 AND locktype = 'relation' AND granted`;

// One round trip: the user relations, and the session's own locks when it is
// in a transaction (pg_backend_pid(): a multi-statement query takes no parameters).
async function snapshot(client: pg.Client, withLocks: boolean) {
  const sql = withLocks ? `${RELATIONS}; ${LOCKS.replace("$1", "pg_backend_pid()")}` : RELATIONS;
  const results = (await client.query(sql)) as unknown as pg.QueryResult | pg.QueryResult[];
  const [rels, locks] = Array.isArray(results) ? results : [results];
  return {
    relations: new Map(
      (rels!.rows as (Relation & { oid: string })[]).map(({ oid, ...r }) => [oid, r]),
    ),
    locks: lockSet((locks?.rows ?? []) as { oid: string; mode: string }[]),
  };
}

const lockSet = (rows: { oid: string; mode: string }[]) =>
  new Set(rows.map((r) => `${r.oid} ${r.mode}`));

async function locksOf(client: pg.ClientBase, pid: number): Promise<Set<string>> {
  return lockSet((await client.query<{ oid: string; mode: string }>(LOCKS, [pid])).rows);
}

/** AccessExclusiveLock → ACCESS EXCLUSIVE. */
export function lockModeName(mode: string): string {
  return mode
    .replace(/Lock$/, "")
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .toUpperCase();
}

/**
 * Runs `st` on `client` and traces it. In a transaction (`inTransaction`) the
 * session's own locks are read after the statement and diffed against those
 * held before; otherwise (CREATE INDEX CONCURRENTLY…) `observer`, a second
 * session, samples the statement's locks while it runs, falling back to the
 * mode PostgreSQL documents when the statement was too quick to catch.
 * Locks on relations the statement itself created are left out: no one
 * else can see those yet.
 */
export async function traceStatement(
  client: pg.Client,
  observer: pg.Client,
  st: Statement,
  inTransaction: boolean,
): Promise<StatementTrace> {
  const pid = backendPid(client);
  const { relations: before, locks: held } = await snapshot(client, inTransaction);
  const seen = new Set<string>();
  let running = true;
  const sampling = inTransaction ? Promise.resolve() : sample(observer, pid, seen, () => running);
  const started = performance.now();
  let error: string | undefined;
  let code: string | undefined;
  try {
    await client.query(st.sql);
  } catch (err) {
    error = (err as Error).message;
    code = sqlstateOf(err);
  } finally {
    running = false;
    await sampling;
  }
  const ms = Math.round(performance.now() - started);
  const trace: StatementTrace = { line: st.line, sql: excerpt(st.sql), locks: [], ms, rewrote: [] };
  if (error !== undefined) return { ...trace, error, ...(code ? { code } : {}) };
  const { relations: after, locks } = await snapshot(client, inTransaction);
  for (const l of locks) if (!held.has(l)) seen.add(l);
  trace.locks = [...seen].flatMap((l) => {
    const [oid, mode] = l.split(" ") as [string, string];
    const rel = before.get(oid);
    return rel
      ? [
          {
            mode: lockModeName(mode),
            relation: rel.name,
            source: inTransaction ? "held" : "sampled",
          } as const,
        ]
      : [];
  });
  if (!inTransaction && trace.locks.length === 0) trace.locks = knownLocks(st, before);
  trace.rewrote = [...before]
    .filter(
      ([oid, r]) =>
        "rm".includes(r.kind) && after.get(oid) && after.get(oid)!.filenode !== r.filenode,
    )
    .map(([, r]) => r.name);
  trace.locks.sort((a, b) => a.relation.localeCompare(b.relation) || a.mode.localeCompare(b.mode));
  return trace;
}

// Polls pg_locks for `pid` until `busy()` turns false.
async function sample(observer: pg.Client, pid: number, seen: Set<string>, busy: () => boolean) {
  while (busy()) {
    for (const l of await locksOf(observer, pid).catch(() => new Set<string>())) seen.add(l);
    await new Promise((r) => setTimeout(r, 2));
  }
}

type Node = Record<string, unknown>;

// PostgreSQL's documented modes for the statements that run outside a
// transaction, when sampling saw nothing.
function knownLocks(st: Statement, existing: Map<string, Relation>): TracedLock[] {
  const [kind, body] = Object.entries(st.node)[0] as [string, Node];
  const concurrent =
    body.concurrent === true ||
    ((body.params as Node[] | undefined) ?? []).some(
      (p) => (p.DefElem as Node | undefined)?.defname === "concurrently",
    );
  const relation = body.relation as Node | undefined;
  const named = relation?.relname ? String(relation.relname) : undefined;
  const find = (name: string | undefined) =>
    [...existing.values()].find(
      (r) => name && (r.name.endsWith(`.${name}`) || r.name.endsWith(`."${name}"`)),
    )?.name;
  const lock = (mode: string, rel: string | undefined): TracedLock[] =>
    rel ? [{ mode, relation: rel, source: "known" }] : [];
  if (kind === "IndexStmt" && concurrent) return lock("SHARE UPDATE EXCLUSIVE", find(named));
  if (kind === "ReindexStmt" && concurrent) return lock("SHARE UPDATE EXCLUSIVE", find(named));
  if (kind === "DropStmt" && concurrent) {
    const items = (((body.objects as Node[] | undefined)?.[0]?.List as Node | undefined)?.items ??
      []) as Node[];
    const last = items.at(-1)?.String as Node | undefined;
    return lock("SHARE UPDATE EXCLUSIVE", find(last?.sval as string | undefined));
  }
  return [];
}

// Cut as blockers cuts other sessions' statements.
function excerpt(sql: string): string {
  const flat = oneLine(sql);
  return flat.length > STATEMENT_CHARS ? `${flat.slice(0, STATEMENT_CHARS - 3)}...` : flat;
}
