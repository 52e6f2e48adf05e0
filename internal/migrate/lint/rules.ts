// The rule table (longer than the rest because it is one: a row per rule),
// the single place each rule's lock, reason and safe rewrite are written
// (docs/migrations.md lists the same table). Ids follow squawk's where squawk
// has the rule; `aliases` keep the ids this linter used before, so existing
// `-- migrate:lint-ignore` markers still work.

export interface Rule {
  severity: "error" | "warning";
  /** The lock mode taken; the finding names the relation. */
  lock?: string;
  /** Cost grows with the table: with a database, severity follows its size. */
  sized?: boolean;
  why: string;
  fix: string;
  aliases?: readonly string[];
  /** Squawk has a rule of this name. */
  squawk?: boolean;
  /** Schema style rather than a lock: reported only when asked (`--style`). */
  style?: boolean;
}

const AE = "ACCESS EXCLUSIVE";

export const RULES = {
  "adding-field-with-default": {
    severity: "error",
    lock: AE,
    sized: true,
    squawk: true,
    why: "a volatile default (or a generated STORED column) rewrites every row while reads and writes wait",
    fix: "add the column without the default, set the default for new rows, backfill in batches",
  },
  "adding-foreign-key-constraint": {
    severity: "error",
    lock: "SHARE ROW EXCLUSIVE",
    sized: true,
    squawk: true,
    aliases: ["constraint-not-valid"],
    why: "checking every existing row blocks writes on both tables for the whole scan",
    fix: "ADD CONSTRAINT … FOREIGN KEY … NOT VALID, then VALIDATE CONSTRAINT in a later migration",
  },
  "adding-not-nullable-field": {
    severity: "error",
    lock: AE,
    sized: true,
    squawk: true,
    why: "SET NOT NULL scans the whole table while reads and writes wait",
    fix: "ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID, VALIDATE it in a later migration, then SET NOT NULL (no scan)",
  },
  "adding-required-field": {
    severity: "error",
    lock: AE,
    sized: true,
    squawk: true,
    aliases: ["not-null-without-default"],
    why: "a NOT NULL column without a DEFAULT fails on a table that has rows",
    fix: "add it nullable or with a constant DEFAULT, backfill, then SET NOT NULL the safe way",
  },
  "adding-serial-primary-key-field": {
    severity: "error",
    lock: AE,
    sized: true,
    squawk: true,
    aliases: ["constraint-not-valid"],
    why: "ADD PRIMARY KEY builds its index while reads and writes wait",
    fix: "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … PRIMARY KEY USING INDEX",
  },
  "ban-char-field": {
    severity: "warning",
    squawk: true,
    style: true,
    why: "char(n) pads with spaces and is never faster than text",
    fix: "use text (with a CHECK on length if needed)",
  },
  "ban-concurrent-index-creation-in-transaction": {
    severity: "error",
    squawk: true,
    why: "CREATE INDEX CONCURRENTLY cannot run inside a transaction block: the migration fails",
    fix: "drop the BEGIN … COMMIT around it; put it in a file of its own",
  },
  "ban-drop-column": {
    severity: "error",
    lock: AE,
    squawk: true,
    aliases: ["drop-column"],
    why: "code still reading the column breaks the moment it is gone",
    fix: "stop reading it in one release, drop it in a later one",
  },
  "ban-drop-database": {
    severity: "error",
    lock: AE,
    squawk: true,
    why: "drops every table and its data",
    fix: "do not drop databases from a migration",
  },
  "ban-drop-not-null": {
    severity: "error",
    lock: AE,
    squawk: true,
    why: "code that assumes the column is never NULL breaks on the first NULL",
    fix: "make readers handle NULL first, then drop NOT NULL in a later release",
  },
  "ban-drop-table": {
    severity: "error",
    lock: AE,
    squawk: true,
    aliases: ["drop-table"],
    why: "loses the data and breaks code still using the table",
    fix: "stop using it in one release, back it up, drop it in a later one",
  },
  "ban-truncate-cascade": {
    severity: "error",
    lock: AE,
    squawk: true,
    why: "CASCADE also empties every table that references it, however far",
    fix: "TRUNCATE the tables you mean by name",
  },
  "ban-create-domain-with-constraint": {
    severity: "warning",
    squawk: true,
    why: "a domain's constraints are checked on every column using it and are hard to change later",
    fix: "put a CHECK on the table's column instead",
  },
  "ban-alter-domain-with-add-constraint": {
    severity: "error",
    squawk: true,
    why: "adding a domain constraint checks every column of every table using it under a lock",
    fix: "add table CHECKs NOT VALID and validate them separately",
  },
  "ban-uncommitted-transaction": {
    severity: "error",
    squawk: true,
    why: "a BEGIN without COMMIT leaves the transaction open: nothing after it is applied as written",
    fix: "close every BEGIN with COMMIT",
  },
  "changing-column-type": {
    severity: "error",
    lock: AE,
    sized: true,
    squawk: true,
    aliases: ["column-type-change"],
    why: "rewrites the table and its indexes while reads and writes wait",
    fix: "add a new column, backfill in batches, switch readers, drop the old one",
  },
  "constraint-missing-not-valid": {
    severity: "error",
    lock: AE,
    sized: true,
    squawk: true,
    aliases: ["constraint-not-valid"],
    why: "checking every existing row holds the lock for the whole scan",
    fix: "ADD CONSTRAINT … NOT VALID, then VALIDATE CONSTRAINT in a later migration (its own transaction)",
  },
  "disallowed-unique-constraint": {
    severity: "error",
    lock: AE,
    sized: true,
    squawk: true,
    aliases: ["constraint-not-valid"],
    why: "ADD UNIQUE builds its index while reads and writes wait",
    fix: "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … UNIQUE USING INDEX",
  },
  "prefer-bigint-over-int": {
    severity: "warning",
    squawk: true,
    style: true,
    aliases: ["prefer-big-int"],
    why: "32-bit ids run out; widening later rewrites the table",
    fix: "use bigint",
  },
  "prefer-bigint-over-smallint": {
    severity: "warning",
    squawk: true,
    style: true,
    aliases: ["prefer-big-int"],
    why: "16-bit values run out; widening later rewrites the table",
    fix: "use bigint (or int where the range is known)",
  },
  "prefer-identity": {
    severity: "warning",
    squawk: true,
    style: true,
    why: "serial types make ownership, permissions and dumps of the sequence awkward",
    fix: "bigint GENERATED BY DEFAULT AS IDENTITY",
  },
  "prefer-robust-stmts": {
    severity: "warning",
    squawk: true,
    why: "a file run outside a transaction that fails half-way cannot simply be rerun",
    fix: "use IF NOT EXISTS / IF EXISTS",
  },
  "prefer-text-field": {
    severity: "warning",
    squawk: true,
    style: true,
    why: "changing varchar(n)'s limit later may need a lock; it is never faster than text",
    fix: "text with a CHECK (length(col) <= n)",
  },
  "prefer-timestamptz": {
    severity: "warning",
    squawk: true,
    style: true,
    why: "timestamp without time zone loses the offset; converting later rewrites the table",
    fix: "use timestamptz",
  },
  "renaming-column": {
    severity: "error",
    lock: AE,
    squawk: true,
    why: "code using the old name breaks the moment it runs",
    fix: "add the new column, write both, switch readers, drop the old one",
  },
  "renaming-table": {
    severity: "error",
    lock: AE,
    squawk: true,
    why: "code using the old name breaks the moment it runs",
    fix: "create the new name (or a view under the old name), switch readers, then drop",
  },
  "require-concurrent-index-creation": {
    severity: "error",
    lock: "SHARE",
    sized: true,
    squawk: true,
    aliases: ["index-not-concurrent"],
    why: "building the index blocks every write to the table",
    fix: "CREATE INDEX CONCURRENTLY in a file of its own (it runs outside a transaction)",
  },
  "require-concurrent-index-deletion": {
    severity: "error",
    lock: AE,
    squawk: true,
    why: "DROP INDEX waits behind every open transaction on the table, and every query queues behind it",
    fix: "DROP INDEX CONCURRENTLY in a file of its own",
  },
  "transaction-nesting": {
    severity: "warning",
    squawk: true,
    why: "each migration already runs in a transaction: this BEGIN/COMMIT ends it early",
    fix: "remove it, or run such files with --transactions file",
  },
  // Beyond squawk: statements that lock or rewrite as surely, that no linter flagged.
  "vacuum-full": {
    severity: "error",
    lock: AE,
    sized: true,
    why: "rewrites the whole table while reads and writes wait",
    fix: "plain VACUUM; to shrink a table online use pg_repack",
  },
  cluster: {
    severity: "error",
    lock: AE,
    sized: true,
    why: "rewrites the whole table in index order while reads and writes wait",
    fix: "leave ordering to the index; use pg_repack to reorder online",
  },
  "lock-table": {
    severity: "error",
    lock: "the named mode",
    why: "an explicit lock held to the end of the migration blocks whatever that mode conflicts with",
    fix: "let each statement take its own lock; keep lock_timeout short",
  },
  "refresh-materialized-view": {
    severity: "error",
    lock: AE,
    sized: true,
    why: "without CONCURRENTLY every read of the view waits for the refresh",
    fix: "REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view)",
  },
  "adding-serial-field": {
    severity: "error",
    lock: AE,
    sized: true,
    why: "a serial column fills every existing row from the sequence: the table is rewritten",
    fix: "add a nullable bigint column, backfill it in batches, then attach the sequence as its default",
  },
  "set-unlogged": {
    severity: "error",
    lock: AE,
    sized: true,
    why: "SET LOGGED/UNLOGGED rewrites the table (and an unlogged table is emptied on crash)",
    fix: "create a new table with the wanted persistence and copy in batches",
  },
  "update-without-where": {
    severity: "error",
    lock: "ROW EXCLUSIVE (every row locked)",
    sized: true,
    why: "updating the whole table in one transaction locks every row and bloats it",
    fix: "backfill in batches (WHERE id BETWEEN …) outside the schema migration",
  },
  "delete-without-where": {
    severity: "error",
    lock: "ROW EXCLUSIVE (every row locked)",
    sized: true,
    why: "deleting the whole table in one transaction locks every row and loses the data",
    fix: "delete in batches, or TRUNCATE if that is what you mean",
  },
  "ban-drop-schema-cascade": {
    severity: "error",
    lock: AE,
    why: "CASCADE drops every object in the schema and everything depending on them",
    fix: "drop the objects you mean by name, then DROP SCHEMA without CASCADE",
  },
  "require-concurrent-reindex": {
    severity: "error",
    lock: AE,
    sized: true,
    why: "REINDEX without CONCURRENTLY blocks writes (and reads through the index) while it rebuilds",
    fix: "REINDEX … CONCURRENTLY, outside a transaction",
  },
  "adding-exclusion-constraint": {
    severity: "error",
    lock: AE,
    sized: true,
    why: "an EXCLUDE constraint builds its index and checks every row under the lock; it cannot be NOT VALID",
    fix: "add it while the table is new or small, or enforce it in a new table and move the rows",
  },
  "foreign-key-without-index": {
    severity: "warning",
    sized: true,
    why: "without an index on the referencing columns every DELETE or key UPDATE on the parent scans this table",
    fix: "CREATE INDEX CONCURRENTLY on the referencing columns",
  },
  "unchecked-dynamic-sql": {
    severity: "warning",
    why: "EXECUTE of a computed string: the linter cannot see what it runs",
    fix: "write the statement out, or review it by hand",
  },
  "expand-incompatible": {
    severity: "error",
    why: "an expand migration runs while the previous release serves, and that release keeps serving after it: what this drops, renames or now refuses breaks it",
    fix: "keep the expand additive (new columns and tables, NOT VALID constraints, triggers writing both); move this statement to the contract (see docs/zero-downtime.md)",
  },
  "missing-down": {
    severity: "error",
    why: "a migration without a .down.sql cannot be reverted",
    fix: "add the .down.sql that undoes it",
  },
  syntax: {
    severity: "error",
    why: "PostgreSQL's parser rejects the file",
    fix: "fix the statement",
  },
} as const satisfies Record<string, Rule>;

export type RuleId = keyof typeof RULES;

/** The rule ids a `-- migrate:lint-ignore NAME` marker may use for `id`. */
export function namesOf(id: RuleId): readonly string[] {
  const rule: Rule = RULES[id];
  return [id, ...(rule.aliases ?? [])];
}
