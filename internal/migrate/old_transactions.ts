import type pg from "pg";
import type { Script } from "./analyse.js";
import { describeSession, oldTransactions, seconds, type Session } from "./blockers.js";
import type { StepFailure } from "./failure.js";
import type { MigratorOptions } from "./options.js";
import type { Step } from "./plan.js";
import type { Prepared } from "./prepare.js";

// A concurrent index build waits for older transactions without a word:
// name them first, and with `refuse` apply nothing while they are open.

/** Open transactions older than the configured age (a concurrent build may wait for them). */
export function olderThan(opts: MigratorOptions, client: pg.Client): Promise<Session[]> {
  return oldTransactions(client, opts.oldTransactionAgeMs);
}

/** Before anything runs: with `refuse`, a plan holding a concurrent index build stops here on old transactions. */
export async function refuseOldTransactions(
  opts: MigratorOptions,
  client: pg.Client,
  p: Prepared,
): Promise<void> {
  if (opts.oldTransactions !== "refuse") return;
  const builds = p.steps.filter((s) => {
    const script = p.scripts.get(s)!;
    return !script.transactional && script.indexes.length > 0;
  });
  if (builds.length === 0) return;
  const old = await olderThan(opts, client);
  if (old.length > 0)
    throw new OldTransactionsError(`${refusalText(builds[0]!, old, opts)}; nothing was applied`);
}

/** --old-transactions=refuse found some: exit 1, nothing applied. */
export class OldTransactionsError extends Error {
  override name = "OldTransactionsError";
}

function refusalText(s: Step, old: Session[], opts: MigratorOptions): string {
  return (
    `${s.name} builds an index concurrently, which waits for every older transaction, and ` +
    `${old.length} transaction(s) are open for more than ${seconds(opts.oldTransactionAgeMs)} ` +
    `(--old-transactions=refuse): ${old.map(describeSession).join("; ")}`
  );
}

export function refusal(
  s: Step,
  script: Script,
  old: Session[],
  opts: MigratorOptions,
): StepFailure {
  return {
    name: s.name,
    direction: s.direction,
    at: s.file,
    message: `${refusalText(s, old, opts)}; it was not started`,
    code: undefined,
    transactional: script.transactional,
    statementsApplied: 0,
    dropped: [],
    connectionLost: false,
    oldTransactions: old,
    notStarted: true,
  };
}
