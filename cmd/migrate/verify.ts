import type { MigratorOptions } from "../../internal/migrate/options.js";
import type { SchemaVerification } from "../../internal/migrate/verify/verify.js";
import { withDatabase, type Args } from "./options.js";
import * as print from "./print.js";

// `migrate verify` (and `up --verify`): is the database's schema the one its
// applied migrations make? Exit 0 yes, 1 no, 2 when it could not tell.

export async function verifyCommand(args: Args): Promise<void> {
  await withDatabase(
    args,
    async (opts) => {
      const v = await schemaVerification(opts);
      if (args.json) print.json(v);
      else writeVerification((text) => process.stdout.write(text), v);
      if (!v.consistent) process.exitCode = 1;
    },
    { logs: false },
  );
}

/** The schema half; a failure to check (unreachable, no CREATEDB, a file that no longer replays) says so, and exits 2. */
export async function schemaVerification(opts: MigratorOptions): Promise<SchemaVerification> {
  const { verifySchema } = await import("../../internal/migrate/verify/verify.js");
  try {
    return await verifySchema(opts);
  } catch (err) {
    throw new Error(`could not verify the schema: ${(err as Error).message}`);
  }
}

export function writeVerification(out: (text: string) => void, v: SchemaVerification): void {
  print.warnings(v.warnings);
  out(
    `schema: ${v.replayed} applied migration(s) replayed into ${v.database} (dropped after)` +
      `${v.pending ? `; ${v.pending} pending, not compared` : ""}\n`,
  );
  for (const d of v.differences) out(`${d.change === "note" ? "note" : "error"}: ${d.message}\n`);
  const found = v.differences.filter((d) => d.change !== "note").length;
  out(
    v.consistent
      ? "consistent: the schema is the one the applied migrations make\n"
      : `inconsistent: ${found} difference(s) between the schema and the applied migrations\n`,
  );
}
