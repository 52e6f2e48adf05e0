import { describeInstance, type Instance } from "./instances.js";
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
