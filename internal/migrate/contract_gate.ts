import type pg from "pg";
import type { StepFailure } from "./failure.js";
import { describeInstance, readLiveInstances, type Instance } from "./instances.js";
import type { MigratorOptions } from "./options.js";
import type { Step } from "./plan.js";

// A contract removes what the previous release still uses: it waits until no
// live instance needs the schema from before it (an instance needs every
// migration up to the newest version its own folder holds). `--force`
// overrides, and says so in the log with the instances it will break.

/** Contracts refused while instances of an older release are alive: exit 1, nothing applied. */
export class ContractWaitError extends Error {
  override name = "ContractWaitError";
  /** For `--json`: each refused contract with the instances it waits for. */
  readonly details: { waiting: { migration: string; instances: Instance[] }[] };
  constructor(blocked: Map<Step, Instance[]>) {
    const waiting = [...blocked].map(([s, instances]) => ({ migration: s.name, instances }));
    super(
      [
        ...waiting.map(
          (w) =>
            `${w.migration} is a contract and ${w.instances.length} live instance(s) still need the schema before it: ${w.instances.map(describeInstance).join("; ")}`,
        ),
        "nothing was applied: stop those instances (their heartbeats expire on their own after a crash), then run it again; `--force` applies it anyway",
      ].join("\n"),
    );
    this.details = { waiting };
  }
}

/** Refuses `blocked` contracts, or with `opts.force` logs each instance they may break. */
export function gateContracts(
  opts: Pick<MigratorOptions, "force" | "log" | "operator">,
  blocked: Map<Step, Instance[]>,
): void {
  if (blocked.size === 0) return;
  if (!opts.force) throw new ContractWaitError(blocked);
  for (const [s, instances] of blocked)
    opts.log.warn(
      {
        migration: s.name,
        operator: opts.operator,
        instances: instances.map(describeInstance),
      },
      "contract applied with --force while instances of an older release are alive",
    );
}

/**
 * Read again just before a contract runs: an instance of the previous
 * release may have started while the steps before it ran (a long backfill).
 * The contract's failure, not begun, when one is alive; undefined when clear.
 */
export async function stillClear(
  opts: Pick<MigratorOptions, "force">,
  client: pg.ClientBase,
  s: Step,
): Promise<StepFailure | undefined> {
  if (opts.force || s.direction !== "up" || s.migration.phase?.kind !== "contract") return;
  const older = ((await readLiveInstances(client)) ?? []).filter(
    (i) => i.schemaVersion < s.migration.version,
  );
  if (older.length === 0) return;
  return {
    name: s.name,
    direction: s.direction,
    at: s.file,
    // The steps before it stand: the refusal says so, not "nothing applied".
    message: `${new ContractWaitError(new Map([[s, older]])).message.split("\n")[0]}; it was not begun: stop those instances, then run it again (\`--force\` applies it anyway)`,
    code: undefined,
    transactional: true,
    statementsApplied: 0,
    dropped: [],
    connectionLost: false,
    notStarted: true,
  };
}
