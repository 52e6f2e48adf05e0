import type { MigratorOptions } from "../../internal/migrate/options.js";
import type { SchemaVerification } from "../../internal/migrate/verify/verify.js";
import type { DataVerification } from "../../internal/biz/data_verify.js";
import { config, withDatabase, type Args } from "./options.js";
import * as print from "./print.js";

// `migrate verify` (and `up --verify`): is the database's schema the one its
// applied migrations make? Exit 0 yes, 1 no, 2 when it could not tell.
// `up --verify` checks the data too (verify_data.ts) when given the server's
// config.

/** `signal` (SIGINT, SIGTERM) stops the replay: the throwaway copy is dropped, and it throws. */
export async function verifyCommand(args: Args, signal?: AbortSignal): Promise<void> {
  await withDatabase(
    args,
    async (opts) => {
      const v = await schemaVerification(opts, signal);
      if (args.json) print.json(v);
      else writeVerification((text) => process.stdout.write(text), v);
      if (!v.consistent) process.exitCode = 1;
    },
    { logs: false },
  );
}

/** The schema half; a failure to check (unreachable, no CREATEDB, a file that no longer replays) says so, and exits 2. */
export async function schemaVerification(
  opts: MigratorOptions,
  signal?: AbortSignal,
): Promise<SchemaVerification> {
  const { verifySchema } = await import("../../internal/migrate/verify/verify.js");
  try {
    return await verifySchema(opts, signal);
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

/** What `up --verify` found: each half's result, or why it was not or could not be checked. */
export interface AfterUp {
  schema: SchemaVerification | { error: string };
  data: DataVerification | { error: string } | { notChecked: string };
}

/** A signal came after the up and before its verification: neither half is checked. */
export function notRun(signal: AbortSignal): AfterUp {
  const why = `not checked: interrupted by ${String(signal.reason)}`;
  return { schema: { error: `applied, but the schema was ${why}` }, data: { notChecked: why } };
}

const NO_KMS =
  "not checked: give -conf with the server's config (its kms section) to check the sealed values and blind indexes too";

/**
 * up --verify, after an up that finished: the schema, and the data when
 * -conf names the server's config. What was applied stays applied; a half
 * that could not check says why.
 */
export async function verifyAfterUp(
  args: Args,
  opts: MigratorOptions,
  signal: AbortSignal,
): Promise<AfterUp> {
  const failed = (what: string) => (err: unknown) => ({
    error: `applied, but could not verify the ${what}: ${(err as Error).message.replace(/^could not verify the schema: /, "")}`,
  });
  const schema = await schemaVerification(opts, signal).catch(failed("schema"));
  if (signal.aborted) return { schema, data: notRun(signal).data };
  const conf = await config(args);
  if (!conf) return { schema, data: { notChecked: NO_KMS } };
  const { dataVerification } = await import("./verify_data.js");
  const data = await dataVerification(opts, conf, { signal, progress: !args.json }).catch(
    failed("data"),
  );
  return { schema, data };
}

/** 1 when a half found a difference, 2 when one could not check (and none found one), else 0. */
export function afterUpExitCode(v: AfterUp): number {
  const found =
    ("consistent" in v.schema && !v.schema.consistent) || ("ok" in v.data && !v.data.ok);
  if (found) return 1;
  return "error" in v.schema || "error" in v.data || ("complete" in v.data && !v.data.complete)
    ? 2
    : 0;
}

export async function writeAfterUp(out: (text: string) => void, v: AfterUp): Promise<void> {
  if ("error" in v.schema) process.stderr.write(`migrate: ${v.schema.error}\n`);
  else writeVerification(out, v.schema);
  if ("notChecked" in v.data) out(`data: ${v.data.notChecked}\n`);
  else if ("error" in v.data) process.stderr.write(`migrate: ${v.data.error}\n`);
  else (await import("./verify_data.js")).writeDataVerification(out, v.data);
}
