import type { StepConsent } from "./consent_record.js";
import type { MigrationFile } from "./source.js";
import { compare, type Applied, type Problem } from "./state.js";

/**
 * Which pending migrations an `up` takes (phase.ts): `expand` only expand
 * files, `contract` only contracts whose expand is applied, `start` what a
 * server may apply as it starts: everything but a contract (an unmarked
 * file as it always was; prepare.ts warns when an older release is alive).
 * Each stops at the first pending migration it may not take.
 */
export type UpPhase = "expand" | "contract" | "start";

/** What an operator asked for; counts are validated positive integers. */
export type Command =
  | { kind: "up"; count?: number; allowOutOfOrder?: boolean; phase?: UpPhase }
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

/** The first pending migration a phased `up` left, and why. */
export interface Held {
  name: string;
  reason: string;
}

/**
 * The steps a command takes from this state, in order, and the migration a
 * phased `up` stopped at; refuses what the state forbids.
 */
export function planSteps(
  files: MigrationFile[],
  applied: Applied[],
  command: Command,
): { steps: Step[]; held?: Held } {
  switch (command.kind) {
    case "up": {
      const { pending, problems } = compare(files, applied);
      refuseOn(problems.filter((p) => !(command.allowOutOfOrder && p.kind === "out-of-order")));
      const { take, held } = command.phase
        ? inPhase(pending, new Set(applied.map((a) => a.name)), files, command.phase)
        : { take: pending, held: undefined };
      const steps = take.slice(0, command.count ?? take.length).map((f) => step(f, "up"));
      return { steps, ...(held && steps.length === take.length ? { held } : {}) };
    }
    case "down":
      return { steps: revertPlan(files, applied, command.count) };
    case "redo": {
      const reverts = revertPlan(files, applied, command.count);
      return { steps: [...reverts, ...reverts.toReversed().map((s) => step(s.migration, "up"))] };
    }
  }
}

/** The pending migrations `phase` takes, in order, up to the first it may not. */
function inPhase(
  pending: MigrationFile[],
  applied: ReadonlySet<string>,
  files: MigrationFile[],
  phase: UpPhase,
): { take: MigrationFile[]; held?: Held } {
  const expandOf = (c: MigrationFile) =>
    files.find((f) => c.phase?.kind === "contract" && f.version === c.phase.expands)!;
  for (const [i, m] of pending.entries()) {
    const reason = holdReason(m, phase, applied, expandOf);
    if (reason) return { take: pending.slice(0, i), held: { name: m.name, reason } };
  }
  return { take: pending };
}

function holdReason(
  m: MigrationFile,
  phase: UpPhase,
  applied: ReadonlySet<string>,
  expandOf: (c: MigrationFile) => MigrationFile,
): string | undefined {
  const kind = m.phase?.kind;
  if (kind === "contract" && phase !== "contract")
    return phase === "start"
      ? `a contract is never applied as a server starts: run \`migrate up --phase contract\` once no instance of the previous release is running`
      : `it is a contract: run \`migrate up --phase contract\` once no instance of the previous release is running`;
  if (phase === "contract") {
    if (kind !== "contract")
      return `it is ${kind === "expand" ? "an expand" : "not marked expand or contract"}: run \`migrate up --phase expand\`${kind === "expand" ? "" : " (or `migrate up`)"} first`;
    const expand = expandOf(m);
    if (!applied.has(expand.name)) return `its expand ${expand.name} is not applied`;
    return undefined;
  }
  if (kind === "expand" || phase === "start") return undefined;
  return "it is not marked -- migrate:phase expand: `migrate up` applies it, and it may break instances of the previous release";
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
