import type { StepFailure } from "./failure.js";

/**
 * What a failed or stopped step left in the database, in words: one text
 * for the CLI's report and the server's start-up error alike.
 */
export function stepOutcome(f: StepFailure): string {
  const left = f.leftInvalid?.length
    ? `; its interrupted index build left ${f.leftInvalid.join(", ")} INVALID (it takes writes and enforces nothing; the next up drops and rebuilds it)`
    : "";
  return (f.connectionLost ? lostOutcome(f) : failedOutcome(f)) + left;
}

function failedOutcome(f: StepFailure): string {
  if (f.notStarted) return "not begun: nothing of it was applied";
  if (f.stoppedInBackfill)
    return `what ran before its backfill and every range committed stay applied, its cursor with them; it is not recorded until the backfill ends`;
  const own = f.ownTransactions;
  if (own) {
    const rolledBack = own.rolledBackFrom
      ? `; the transaction it opened at ${own.rolledBackFrom} rolled back`
      : "";
    if (!own.finalThrough)
      return `it manages its own transactions: nothing of it committed${rolledBack}; it is not recorded`;
    return (
      `it manages its own transactions: what ran through ${own.finalThrough} committed${rolledBack}; ` +
      "it is not recorded, so the database is between versions (dirty): finish or undo the committed part by hand, then rerun"
    );
  }
  return f.transactional
    ? "rolled back: nothing of it was applied"
    : f.statementsApplied === 0
      ? "it runs outside a transaction and stopped at its first statement; it is not recorded"
      : `it runs outside a transaction: its first ${f.statementsApplied} statement(s) stay applied and it is not recorded; check them before rerunning`;
}

// The reply to the statement in flight never came: say only what was read back.
function lostOutcome(f: StepFailure): string {
  const o = f.outcome;
  const head = "the connection was lost before the outcome was known (outcome unknown); ";
  if (!o || "unknown" in o)
    return `${head}${o?.unknown ?? "not checked"}: run \`migrate status\` before anything else`;
  const done = f.direction === "up" ? o.recorded : !o.recorded;
  const verb = f.direction === "up" ? "applied" : "reverted";
  if (done)
    return `${head}reconnected and checked: it IS ${verb} (committed and recorded before the connection was lost)`;
  if (f.transactional)
    return `${head}reconnected and checked: it is NOT ${verb}: nothing of it was committed`;
  return (
    `${head}reconnected and checked: it is NOT ${f.direction === "up" ? "recorded" : "unrecorded"}; it runs outside a transaction: ` +
    `its first ${f.statementsApplied} statement(s) stay applied and the one at ${f.at} may or may not have; check them before rerunning`
  );
}
