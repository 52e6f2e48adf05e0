import type { StepConsent } from "./consent_record.js";
import type { MigrationFile } from "./source.js";
import { compare, type Applied, type Problem } from "./state.js";

/** What an operator asked for; counts are validated positive integers. */
export type Command =
  | { kind: "up"; count?: number; allowOutOfOrder?: boolean }
  | { kind: "down"; count: number | "all" }
  | { kind: "redo"; count: number };

/** One migration to run in one direction. */
export interface Step {
  name: string;
  direction: "up" | "down";
  /** The file that runs. */
  file: string;
  sql: string;
  migration: MigrationFile;
  /** Set by prepare() on an up whose file consents to its findings; recorded with it. */
  consent?: StepConsent;
}

/** The state or the files forbid running (edited applied file, out of order…). */
export class MigrationRefusedError extends Error {
  override name = "MigrationRefusedError";
  constructor(readonly problems: Problem[]) {
    super(problems.map((p) => p.message).join("\n"));
  }
}

/** The steps a command takes from this state, in order; refuses what the state forbids. */
export function planSteps(files: MigrationFile[], applied: Applied[], command: Command): Step[] {
  switch (command.kind) {
    case "up": {
      const { pending, problems } = compare(files, applied);
      refuseOn(problems.filter((p) => !(command.allowOutOfOrder && p.kind === "out-of-order")));
      return pending.slice(0, command.count ?? pending.length).map((f) => step(f, "up"));
    }
    case "down":
      return revertPlan(files, applied, command.count);
    case "redo": {
      const reverts = revertPlan(files, applied, command.count);
      return [...reverts, ...reverts.toReversed().map((s) => step(s.migration, "up"))];
    }
  }
}

function revertPlan(files: MigrationFile[], applied: Applied[], count: number | "all"): Step[] {
  const { problems } = compare(files, applied);
  refuseOn(problems.filter((p) => p.kind === "changed" || p.kind === "deleted"));
  const byName = new Map(files.map((f) => [f.name, f]));
  const last = count === "all" ? applied : applied.slice(-count);
  return last.toReversed().map((a) => {
    const file = byName.get(a.name)!;
    if (file.downPath === undefined) {
      throw new MigrationRefusedError([
        {
          kind: "deleted",
          name: a.name,
          severity: "error",
          message: `${file.upPath} has no down file: ${a.name} cannot be reverted; nothing was changed`,
        },
      ]);
    }
    return step(file, "down");
  });
}

function step(file: MigrationFile, direction: "up" | "down"): Step {
  return {
    name: file.name,
    direction,
    file: direction === "up" ? file.upPath : file.downPath!,
    sql: direction === "up" ? file.up : file.down!,
    migration: file,
  };
}

function refuseOn(problems: Problem[]): void {
  const errors = problems.filter((p) => p.severity === "error");
  if (errors.length > 0) throw new MigrationRefusedError(errors);
}
