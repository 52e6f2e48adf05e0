import type {
  Rehearsal,
  RehearsalMode,
  SchemaSource,
} from "../../internal/migrate/rehearse/rehearse.js";
import { UsageError, withDatabase, type Args } from "./options.js";
import * as print from "./print.js";
import { signalExitCode, untilSignalled } from "./signals.js";

// `up --rehearse` and `plan`: the pending migrations run somewhere that does
// not matter, traced statement by statement; the target stays as it was.

/** `--rehearse` alone or `=copy`: a copy; `=target`: BEGIN … ROLLBACK on the target. */
export function rehearsalMode(value: string | undefined): RehearsalMode {
  if (value === undefined || value === "" || value === "copy") return "copy";
  if (value === "target") return "target";
  throw new UsageError(
    `--rehearse ${JSON.stringify(value)}: expected copy or target (write --rehearse=target; a count goes first: up 2 --rehearse)`,
  );
}

/** Exit 0 when everything applied in rehearsal, 1 when a migration failed there or `up` would refuse a file, 2 (thrown) when it could not rehearse. */
export async function rehearseCommand(args: Args, count: number | undefined): Promise<void> {
  if (args["dry-run"]) throw new UsageError("--dry-run and --rehearse: give one");
  if (args.events !== undefined)
    throw new UsageError(
      "--events and --rehearse: a rehearsal applies nothing, so it has no events",
    );
  const mode = rehearsalMode(args.rehearse);
  const schemaFrom = args["schema-from"] as SchemaSource | undefined;
  if (schemaFrom && mode === "target")
    throw new UsageError("--schema-from applies to a rehearsal on a copy, not --rehearse=target");
  await untilSignalled(async (stop) => {
    await withDatabase(
      args,
      async (opts) => {
        const { rehearse } = await import("../../internal/migrate/rehearse/rehearse.js");
        const r = await rehearse(
          opts,
          {
            mode,
            count,
            schemaFrom,
            allowOutOfOrder: args["allow-out-of-order"],
            ...(args.phase ? { phase: args.phase as "expand" | "contract" } : {}),
          },
          stop,
        );
        print.warnings(r.warnings);
        if (args.json) print.json(r);
        else write(r, stop.aborted);
        // `up` would refuse: a rehearsal in CI fails the same way.
        if (r.failed || r.refused.length > 0) process.exitCode = 1;
        // A statement that failed on its own as the signal came is a failure.
        if (stop.aborted && !r.failed) process.exitCode = signalExitCode(stop.reason as string);
      },
      // Logged (stderr): rehearsal databases of earlier runs it drops, one it could not.
      { logs: true },
    );
  });
}

function write(r: Rehearsal, interrupted: boolean): void {
  const out = (text: string) => process.stdout.write(text);
  const where =
    r.mode === "target"
      ? "on the target, in one transaction rolled back"
      : `on a copy (database ${r.database}, schema from ${r.schemaFrom === "dump" ? "pg_dump --schema-only" : "the applied files replayed"}; dropped after)`;
  if (r.migrations.length === 0) {
    out(
      interrupted
        ? "interrupted before anything was rehearsed; the target was not changed\n"
        : "nothing to rehearse: no pending migrations\n",
    );
    return;
  }
  out(`rehearsal ${where}\n`);
  for (const m of r.migrations) {
    out(
      `${m.failed ? "FAILED" : m.stopped ? "STOPPED" : "ok"} ${m.name} (${m.ms} ms${m.transactional ? "" : ", outside a transaction"})\n`,
    );
    print.gate(out, m.gate, "  ");
    for (const st of m.statements) {
      out(`  ${m.file}:${st.line} ${st.ms} ms  ${st.sql}\n`);
      for (const l of st.locks) out(`    lock ${l.mode} on ${l.relation} (${l.source})\n`);
      for (const t of st.rewrote) out(`    rewrote ${t}\n`);
      if (st.error !== undefined) out(`    error: ${st.error}\n`);
    }
  }
  const failed = r.migrations.find((m) => m.failed);
  const done = r.migrations.filter((m) => !m.failed && !m.stopped).length;
  out(
    failed
      ? `${failed.name} failed in rehearsal; the target was not changed\n`
      : r.interrupted
        ? `interrupted by ${r.interrupted}: ${done} migration(s) rehearsed whole, the rest not; the target was not changed\n`
        : `rehearsed ${r.migrations.length} migration(s); the target was not changed\n`,
  );
  if (r.refused.length > 0)
    out(
      `up would refuse: ${r.refused.length} file(s) need consent (${r.refused.join(", ")}); nothing would be applied\n`,
    );
}
