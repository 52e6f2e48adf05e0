import type { Finding } from "../../internal/data/migrate/lint.js";
import type { Step, StepResult } from "../../internal/data/migrate/runner.js";
import type { Problem, StatusEntry } from "../../internal/data/migrate/state.js";

type Write = (text: string) => void;

/** --dry-run: the SQL that would run, in order, with where it comes from. */
export function printPlan(write: Write, steps: Step[]): void {
  if (steps.length === 0) return write("-- nothing to do\n");
  for (const s of steps) {
    const mode = s.noTransaction ? "outside a transaction" : "in its own transaction";
    write(`-- ${s.name} (${s.direction}) from ${s.file}, ${mode}\n${s.sql.trimEnd()}\n\n`);
  }
}

export function printApplied(write: Write, results: StepResult[]): void {
  if (results.length === 0) return write("nothing to do\n");
  for (const r of results)
    write(`${r.direction === "up" ? "applied " : "reverted"} ${r.name} (${r.ms} ms)\n`);
}

export function printStatus(write: Write, entries: StatusEntry[], problems: Problem[]): void {
  for (const e of entries) {
    const when = e.runOn ? e.runOn.toISOString() : "-".padEnd(24);
    write(`${e.state.padEnd(8)} ${when}  ${e.file.padEnd(10)} ${e.name}\n`);
  }
  const pending = entries.filter((e) => e.state === "pending").length;
  write(`\n${entries.length - pending} applied, ${pending} pending\n`);
  printProblems(write, problems);
}

export function printProblems(write: Write, problems: Problem[]): void {
  for (const p of problems) write(`${p.severity}: ${p.message}\n`);
}

export function printFindings(write: Write, findings: Finding[]): void {
  for (const f of findings) write(`${f.file}:${f.line}: ${f.severity} [${f.rule}] ${f.message}\n`);
  const errors = findings.filter((f) => f.severity === "error").length;
  write(`${findings.length} finding(s), ${errors} error(s)\n`);
}
