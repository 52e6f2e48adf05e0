import pg from "pg";
import { withConsent, type RecordedConsent } from "./consent_record.js";
import { MIGRATIONS_TABLE, MIGRATIONS_TABLE_COLUMNS } from "./seams/node_pg_migrate.js";
import type { Step } from "./plan.js";
import type { MigrationFile } from "./source.js";

// run_on is a `timestamp` column: the time in UTC, whatever the session's zone.
const NOW_UTC = "now() AT TIME ZONE 'UTC'";

export interface Applied {
  name: string;
  runOn: Date;
  /** SHA-256 of the up file when it ran; null when applied by other tooling. */
  checksum: string | null;
}

export type ProblemKind =
  | "changed"
  | "deleted"
  | "out-of-order"
  | "unrecorded"
  | "invalid-index"
  | "golang-migrate"
  | "source";

export interface Problem {
  kind: ProblemKind;
  /** The migration (or index) concerned; empty when the problem is the folder's. */
  name: string;
  /** Errors stop `up` and fail `validate`; warnings are reported only. */
  severity: "error" | "warning";
  message: string;
}

export interface StatusEntry {
  name: string;
  state: "applied" | "pending";
  runOn: Date | undefined;
  /** ok, changed (file edited since it ran), deleted (file gone), unrecorded, or "-" when pending. */
  file: "ok" | "changed" | "deleted" | "unrecorded" | "-";
  /** Consent recorded when it was applied (rules it was allowed to break, and why). */
  consents?: RecordedConsent[];
  /** The backup taken before the run that applied it (data.database.migration.backup_command). */
  backup?: { location: string | null; takenAt: Date };
  /** What its `-- migrate:phase` line declares, when it has one. */
  phase?: "expand" | "contract";
  /** A failure of it that stands (migrate_failures): not resolved by a later success, still pending after an up, still applied after a down. */
  lastFailure?: { direction: "up" | "down"; failedAt: Date; at: string; sqlstate: string | null };
}

/**
 * Creates pgmigrations as node-pg-migrate does, so its own CLI still reads our
 * state, plus a checksum column (NULL in rows that CLI writes). A table made
 * by an earlier version keeps the column default it had then (unused).
 */
export async function ensureStateTable(client: pg.ClientBase): Promise<void> {
  // Checked first: ALTER TABLE takes an ACCESS EXCLUSIVE lock (and needs the
  // owner) even when the column is there, so every run would wait behind
  // any open reader of pgmigrations.
  const { rows } = await client.query<{ ready: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_attribute
       WHERE attrelid = to_regclass($1) AND attname = 'checksum' AND NOT attisdropped) AS ready`,
    [MIGRATIONS_TABLE],
  );
  if (rows[0]!.ready) return;
  // One query, one transaction: one commit to wait for, not two.
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (${MIGRATIONS_TABLE_COLUMNS});
     ALTER TABLE ${MIGRATIONS_TABLE} ADD COLUMN IF NOT EXISTS checksum varchar(64)`,
  );
}

/**
 * The statement that records a step, sent as the step's last (inside its
 * transaction when it has one): up inserts the row with the file's checksum,
 * down deletes it. A literal, not a parameter: it may close a multi-statement
 * query. An up with consent records it in the same statement.
 */
export function recordStatement(s: Step): string {
  const name = pg.escapeLiteral(s.name);
  if (s.direction === "down") return `DELETE FROM ${MIGRATIONS_TABLE} WHERE name = ${name}`;
  const insert = `INSERT INTO ${MIGRATIONS_TABLE} (name, run_on, checksum) VALUES (${name}, ${NOW_UTC}, ${pg.escapeLiteral(s.migration.checksum)})`;
  return s.consent?.allows.length ? withConsent(insert, s.name, s.consent) : insert;
}

/**
 * Records migrations as applied without running them (adoption, baseline),
 * in one statement, each with its file's checksum.
 */
export async function recordApplied(client: pg.ClientBase, files: MigrationFile[]): Promise<void> {
  if (files.length === 0) return;
  await client.query(
    `INSERT INTO ${MIGRATIONS_TABLE} (name, run_on, checksum)
     SELECT name, ${NOW_UTC}, checksum FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS f(name, checksum, n) ORDER BY n`,
    [files.map((f) => f.name), files.map((f) => f.checksum)],
  );
}

/** Replaces an applied migration's recorded checksum with its file's (repair). */
export async function recordChecksum(client: pg.ClientBase, file: MigrationFile): Promise<void> {
  await client.query(`UPDATE ${MIGRATIONS_TABLE} SET checksum = $1 WHERE name = $2`, [
    file.checksum,
    file.name,
  ]);
}

/** Whether pgmigrations exists: a database this tool (or node-pg-migrate) has migrated. */
export async function stateTableExists(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [
    MIGRATIONS_TABLE,
  ]);
  return rows[0]?.ok === true;
}

/**
 * Applied migrations in the order they ran (the id sequence: the same whatever
 * any session's time zone); none when the table does not exist yet.
 */
export async function readApplied(client: pg.ClientBase): Promise<Applied[]> {
  const exists = await client.query<{ ok: boolean; has_checksum: boolean }>(
    `SELECT to_regclass($1) IS NOT NULL AS ok,
            EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'checksum' AND NOT attisdropped) AS has_checksum`,
    [MIGRATIONS_TABLE],
  );
  if (!exists.rows[0]?.ok) return [];
  const checksum = exists.rows[0].has_checksum ? "checksum" : "NULL::varchar AS checksum";
  const { rows } = await client.query<{ name: string; run_on: Date; checksum: string | null }>(
    `SELECT name, run_on AT TIME ZONE 'UTC' AS run_on, ${checksum} FROM ${MIGRATIONS_TABLE} ORDER BY id`,
  );
  return rows.map((r) => ({ name: r.name, runOn: r.run_on, checksum: r.checksum }));
}

/** Compares files with what ran: every migration's state, the pending ones in order, and problems. */
export function compare(files: MigrationFile[], applied: Applied[]) {
  const byName = new Map(files.map((f) => [f.name, f]));
  const ran = new Map(applied.map((a) => [a.name, a]));
  const problems: Problem[] = [];
  const entries: StatusEntry[] = [];
  for (const a of applied) {
    const file = byName.get(a.name);
    let state: StatusEntry["file"] = "ok";
    if (!file) {
      state = "deleted";
      problems.push({
        kind: "deleted",
        name: a.name,
        severity: "error",
        message: `${a.name} was applied but its file is gone`,
      });
    } else if (a.checksum === null) {
      state = "unrecorded";
      problems.push({
        kind: "unrecorded",
        name: a.name,
        severity: "warning",
        message: `${a.name} was applied without a checksum; \`migrate repair\` records the current file's`,
      });
    } else if (a.checksum !== file.checksum) {
      state = "changed";
      problems.push({
        kind: "changed",
        name: a.name,
        severity: "error",
        message: `${file.upPath} was edited after it was applied (checksum ${a.checksum.slice(0, 12)}…, file now ${file.checksum.slice(0, 12)}…); add a new migration instead, or run \`migrate repair\` to accept the edit`,
      });
    }
    entries.push({ name: a.name, state: "applied", runOn: a.runOn, file: state });
  }
  const pending = files.filter((f) => !ran.has(f.name));
  const lastApplied = files.filter((f) => ran.has(f.name)).at(-1);
  for (const f of pending) {
    entries.push({ name: f.name, state: "pending", runOn: undefined, file: "-" });
    if (lastApplied && f.version < lastApplied.version) {
      problems.push({
        kind: "out-of-order",
        name: f.name,
        severity: "error",
        message: `${f.upPath} is pending but sorts before the applied ${lastApplied.name}; rename it to a later version, or run \`migrate up --allow-out-of-order\``,
      });
    }
  }
  const order = new Map(files.map((f, i) => [f.name, i]));
  entries.sort((a, b) => (order.get(a.name) ?? -1) - (order.get(b.name) ?? -1));
  return { entries, pending, problems };
}
