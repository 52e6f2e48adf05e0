/** What a finding says a statement locks: the mode and the relations it is taken on. */
export interface Lock {
  mode: string;
  on: string[];
}

/** A table's size from the catalog (with a database): estimated rows and bytes on disk. */
export interface TableSize {
  rows: number;
  bytes: number;
}

/** One problem at file:line, with what it locks, why that hurts, and the safe rewrite. */
export interface Finding {
  rule: string;
  severity: "error" | "warning";
  file: string;
  line: number;
  /** What this statement does wrong, naming the table and column. */
  message: string;
  /** The lock the statement takes, when it takes one worth naming. */
  lock?: Lock;
  why: string;
  fix: string;
  /** The table the severity is judged by. */
  table?: string;
  /** Set with a database: the table's size, which set the severity. */
  size?: TableSize;
  /** The reason of the file's `-- migrate:allow` for it: `up` applies it, and it is no error. */
  consent?: string;
}

/** "ACCESS EXCLUSIVE on users, orders" */
export function lockText(lock: Lock): string {
  return lock.on.length ? `${lock.mode} on ${lock.on.join(", ")}` : lock.mode;
}

/** Findings that block: errors without consent. */
export const blocking = (findings: Finding[]): Finding[] =>
  findings.filter((f) => f.severity === "error" && f.consent === undefined);
