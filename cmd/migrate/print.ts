import type { BackfillProgress } from "../../internal/migrate/backfill/progress_record.js";
import { describeInstance, type Instance } from "../../internal/migrate/instances.js";
import type { Gate } from "../../internal/migrate/lint/consent.js";
import { blocking, lockText, type Finding } from "../../internal/migrate/lint/finding.js";
import { stepOutcome } from "../../internal/migrate/outcome.js";
import type { Plan, RunReport } from "../../internal/migrate/runner.js";
import type { Problem, StatusEntry } from "../../internal/migrate/state.js";

export { lockWaits } from "./print_locks.js";
import { lockAttempts, oldTransactions } from "./print_locks.js";

type Write = (text: string) => void;

/** --json: one document on stdout; bigints as decimal strings. */
export function json(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2)}\n`,
  );
}

/** Warnings go to stderr, so stdout stays the result. */
export function warnings(list: string[]): void {
  for (const w of list) process.stderr.write(`warning: ${w}\n`);
}

/** --dry-run: what would be adopted, then the SQL that would run, in order. */
export function plan(write: Write, p: Plan): void {
  for (const name of p.adopted) write(`-- would record ${name} as applied (golang-migrate)\n`);
  if (p.held) write(`-- stops before ${p.held.name}: ${p.held.reason}\n`);
  if (p.steps.length === 0) return write("-- nothing to do\n");
  for (const s of p.steps) {
    const mode = s.transactional
      ? "in its own transaction"
      : s.ownTransactions
        ? "statement by statement, in the transactions the file opens itself"
        : "outside a transaction, statement by statement";
    write(`-- ${s.name} (${s.direction}) from ${s.file}, ${mode}\n`);
    if (s.gate) gate(write, s.gate, "-- ");
    for (const i of s.waitsFor ?? [])
      write(`-- WAITS FOR: a live instance of an older release: ${i}\n`);
    for (const b of s.backfills ?? [])
      write(
        `-- backfill at line ${b.line}: ${b.table} in batches of ${b.batch} rows of its key, each its own transaction (pause ${b.pauseMs} ms, lock_timeout ${b.lockTimeoutMs === undefined ? "the migration's" : `${b.lockTimeoutMs} ms`}); recorded once no row matches its WHERE\n`,
      );
    write(`${s.sql.trimEnd()}\n\n`);
  }
  const refused = p.steps.filter((s) => s.gate && !s.gate.ok).length;
  if (refused > 0)
    write(`-- up would refuse: ${refused} file(s) need consent; nothing would be applied\n`);
}

/** The consent gate's verdict on one file, each line after `prefix`. */
export function gate(write: Write, g: Gate, prefix: string): void {
  for (const e of g.errors) write(`${prefix}REFUSED: ${e}\n`);
  for (const n of g.needed)
    write(
      n.rule === "expand-incompatible"
        ? `${prefix}REFUSED: ${n.file}:${n.line} [${n.rule}] ${n.message}; ${n.marker}\n`
        : `${prefix}NEEDS CONSENT: ${n.file}:${n.line} [${n.rule}] ${n.message}; add above line ${n.line}: ${n.marker}\n`,
    );
  for (const a of g.used) write(`${prefix}consented: ${a.rule} (line ${a.line}): "${a.reason}"\n`);
}

/** Every step that ran with its duration, then the one that failed, if any. */
export function report(write: Write, r: RunReport): void {
  if (r.backup)
    write(
      `backup   ${r.backup.location ?? "taken (its command named no location)"} (${r.backup.ms} ms)\n`,
    );
  if (r.adopted.length > 0) {
    write(
      `adopted  ${r.adopted.length} migrations from golang-migrate (${r.adopted[0]} … ${r.adopted.at(-1)})\n`,
    );
  }
  for (const s of r.done) {
    for (const index of s.dropped)
      write(`dropped  INVALID index ${index} (left by an interrupted build)\n`);
    oldTransactions(write, s.name, s.oldTransactions);
    lockAttempts(write, s.lockAttempts);
    for (const b of s.backfills ?? [])
      write(
        `filled   ${b.table}: ${b.rows} row(s) in ${b.batches} batch(es), ${b.rowsPerSecond} rows/s${b.resumed ? " (resumed where an earlier run stopped)" : ""}\n`,
      );
    write(`${s.direction === "up" ? "applied " : "reverted"} ${s.name} (${s.ms} ms)\n`);
  }
  const f = r.failed;
  if (f) {
    const left = stepOutcome(f);
    for (const index of f.dropped)
      write(`dropped  INVALID index ${index} (left by an interrupted build)\n`);
    oldTransactions(write, f.name, f.oldTransactions);
    write(
      `FAILED   ${f.name} (${f.direction}) at ${f.at}: ${f.message}${f.code ? ` [SQLSTATE ${f.code}]` : ""}\n         ${left}\n`,
    );
    lockAttempts(write, f.lockAttempts, f.notRetried);
    const before = r.done.length;
    write(`${before} step(s) before it completed${before ? " and stand" : ""}\n`);
  } else if (r.done.length === 0 && r.adopted.length === 0 && !r.interrupted)
    write("nothing to do\n");
  if (r.held && !f && !r.interrupted) write(`stopped before ${r.held.name}: ${r.held.reason}\n`);
  const i = r.interrupted;
  if (i) {
    const stopped = r.failed
      ? `; ${r.failed.name} (${r.failed.direction}) ${r.failed.stopped ? "was stopped" : "failed on its own"}, see above`
      : "";
    const left = i.notStarted.length ? `; not started: ${i.notStarted.join(", ")}` : "";
    write(
      `INTERRUPTED by ${i.signal}: ${r.done.length} step(s) completed and stand${stopped}${left}\n`,
    );
  }
}

export function status(
  write: Write,
  entries: StatusEntry[],
  problems: Problem[],
  change: {
    midChange: { expand: string; contract: string }[];
    instances?: Instance[];
    backfilling?: BackfillProgress[];
  } = { midChange: [] },
): void {
  for (const e of entries) {
    const when = e.runOn ? e.runOn.toISOString() : "-".padEnd(24);
    const phase = e.phase ? ` [${e.phase}]` : "";
    write(`${e.state.padEnd(8)} ${when}  ${e.file.padEnd(10)} ${e.name}${phase}\n`);
    if (e.backup)
      write(
        `         backup before it: ${e.backup.location ?? "(no location named)"} at ${e.backup.takenAt.toISOString()}\n`,
      );
    const f = e.lastFailure;
    if (f)
      write(
        `         last ${f.direction} FAILED at ${f.failedAt.toISOString()}: ${f.at}${f.sqlstate ? ` (SQLSTATE ${f.sqlstate})` : ""}\n`,
      );
    for (const c of e.consents ?? []) {
      const who = c.operator ? `${c.operator} as ${c.dbUser}` : c.dbUser;
      write(
        `         consent ${c.rule} (line ${c.line}): "${c.reason}" by ${who} at ${c.at.toISOString()}\n`,
      );
    }
  }
  const pending = entries.filter((e) => e.state === "pending").length;
  write(`\n${entries.length - pending} applied, ${pending} pending (times in UTC)\n`);
  for (const m of change.midChange)
    write(
      `mid-change: ${m.expand} is expanded and its contract ${m.contract} pending: both releases' schemas are served; \`migrate up --phase contract\` once the previous release has stopped\n`,
    );
  for (const b of change.backfilling ?? [])
    write(
      // Not the cursor: a key may be row data (a text key).
      `backfilling: ${b.migration} (${b.direction}): ${b.rows} row(s) filled (backfill ${b.stage + 1} of the file), last at ${b.updatedAt.toISOString()}: \`migrate ${b.direction}\` goes on from there\n`,
    );
  for (const i of change.instances ?? []) write(`live instance: ${describeInstance(i)}\n`);
  problemList(write, problems);
}

export function validation(write: Write, problems: Problem[], ignored: string[], failed: boolean) {
  problemList(write, problems);
  for (const name of ignored) write(`ignored: ${name} (not a migration file)\n`);
  if (!failed) write("ok\n");
}

function problemList(write: Write, problems: Problem[]): void {
  for (const p of problems) write(`${p.severity}: ${p.message}\n`);
}

export function findings(write: Write, list: Finding[], applied: string[] = []): void {
  for (const f of list) {
    const severity = f.consent === undefined ? f.severity : `${f.severity}, consented`;
    write(`${f.file}:${f.line}: ${severity} [${f.rule}] ${f.message}\n`);
    if (f.consent !== undefined) write(`    consent: "${f.consent}"\n`);
    const size = f.size ? ` (${f.size.rows} rows, ${bytes(f.size.bytes)})` : "";
    if (f.lock) write(`    lock: ${lockText(f.lock)}${size}\n`);
    else if (size) write(`    table: ${f.table}${size}\n`);
    write(`    why:  ${f.why}\n    fix:  ${f.fix}\n`);
  }
  const errors = blocking(list).length;
  const consented = list.filter((f) => f.consent !== undefined).length;
  const skipped = applied.length ? ` (${applied.length} applied migration(s) not linted)` : "";
  const given = consented ? `, ${consented} consented` : "";
  write(`${list.length} finding(s), ${errors} error(s)${given}${skipped}\n`);
}

function bytes(n: number): string {
  const units = ["bytes", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${n.toFixed(1)} ${units[i]}`;
}
