import { SingleBar } from "cli-progress";
import type { DataVerification } from "../../internal/biz/data_verify.js";
import type { Config } from "../../internal/conf/load.js";
import type { MigratorOptions } from "../../internal/migrate/options.js";
import { config, UsageError, withDatabase, type Args } from "./options.js";
import * as print from "./print.js";
import { signalExitCode, untilSignalled } from "./signals.js";

// `migrate verify --data`: with the server's KMS configuration, every sealed
// value opens under its row's context and every blind index matches its
// value. Read only (a read-only session, READ ONLY transactions); what is
// printed are counts, ids, columns and problems, never a value. Exit 0 all
// verify, 1 any does not, 2 could not check, 130/143 interrupted (the output
// says where to resume with --from).

const DEFAULT_BATCH = 1000;

export async function verifyDataCommand(args: Args): Promise<void> {
  const fromId = wholeNumber("--from", args.from ?? "0", 0, 2 ** 31 - 1);
  const batchSize = wholeNumber(
    "--batch-size",
    args["batch-size"] ?? `${DEFAULT_BATCH}`,
    1,
    10_000,
  );
  const conf = await config(args);
  if (!conf)
    throw new UsageError(
      "verify --data needs the KMS: -conf a config with its kms section (the server's), its root key there or in KMS_ROOT_KEY",
    );
  const stopping = (signal: NodeJS.Signals) =>
    process.stderr.write(
      `migrate: ${signal}: stopping after the batch in hand (again to stop now)\n`,
    );
  await untilSignalled(async (stop) => {
    await withDatabase(
      args,
      async (opts) => {
        const v = await dataVerification(opts, conf, {
          fromId,
          batchSize,
          signal: stop,
          progress: !args.json,
        });
        if (args.json) print.json(v);
        else writeDataVerification((text) => process.stdout.write(text), v);
        process.exitCode = !v.complete
          ? signalExitCode(stop.reason as NodeJS.Signals)
          : v.ok
            ? 0
            : 1;
      },
      { logs: false },
    );
  }, stopping);
}

/**
 * The data half, also run by `up --verify`: opens the KMS of `conf` read
 * only over a read-only pool and checks every users row after `fromId`,
 * until `signal` (then `complete` is false).
 */
export async function dataVerification(
  opts: MigratorOptions,
  conf: Config,
  {
    fromId = 0,
    batchSize = DEFAULT_BATCH,
    signal,
    progress,
  }: { fromId?: number; batchSize?: number; signal: AbortSignal; progress: boolean },
): Promise<DataVerification> {
  const { readOnlyPool, newUserSealedReader } =
    await import("../../internal/data/sealed_reader.js");
  const { openKms } = await import("../server/kms.js");
  const { verifySealedData } = await import("../../internal/biz/data_verify.js");
  const pool = readOnlyPool(opts.databaseUrl, opts);
  try {
    const kms = await openKms(conf.kms!, {
      data: { pool, direct: { url: opts.databaseUrl, pool } },
      log: opts.log,
      readOnly: true,
    }).catch((err: unknown) => {
      throw new Error(`could not open the KMS: ${(err as Error).message}`);
    });
    try {
      const reader = newUserSealedReader(pool);
      const bar = progress ? progressBar(await reader.count(fromId)) : undefined;
      return await verifySealedData(reader, kms.cipher, {
        fromId,
        batchSize,
        signal,
        onBatch: bar,
      }).finally(() => bar?.stop());
    } finally {
      await kms.close();
    }
  } finally {
    await pool.end();
  }
}

function wholeNumber(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^[0-9]{1,10}$/.test(text) || n < min || n > max)
    throw new UsageError(`${flag} ${text}: expected a whole number from ${min} to ${max}`);
  return n;
}

/**
 * A bar on stderr on a terminal (a line every 10 s without one), with the
 * last id checked: the --from to resume with.
 */
function progressBar(total: number) {
  const bar = new SingleBar({
    format:
      "verify --data |{bar}| {percentage}% | {value}/{total} rows | {rate} rows/s | {failed} failed | after id {lastId}",
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: 10_000,
    hideCursor: true,
  });
  const started = performance.now();
  bar.start(total, 0, { rate: "0", failed: "0", lastId: "-" });
  const update = (p: { rows: number; lastId: number; failed: number }) => {
    const seconds = (performance.now() - started) / 1000;
    // Rows written meanwhile can take it past the count made at the start.
    if (p.rows > total) bar.setTotal((total = p.rows));
    bar.update(p.rows, {
      rate: seconds > 0 ? (p.rows / seconds).toFixed(0) : "0",
      failed: String(p.failed),
      lastId: String(p.lastId),
    });
  };
  return Object.assign(update, { stop: () => bar.stop() });
}

export function writeDataVerification(out: (text: string) => void, v: DataVerification): void {
  out(
    `data: ${v.rows} row(s) after id ${v.fromId} checked in ${v.seconds.toFixed(1)} s (${v.rowsPerSecond.toFixed(0)} rows/s), up to id ${v.lastId}\n`,
  );
  for (const c of v.sealed)
    out(
      `sealed  ${`${c.table}.${c.column}`.padEnd(24)} key ${String(c.keyVersion ?? "-").padEnd(5)} ok ${c.ok}  failed ${c.failed}\n`,
    );
  for (const c of v.indexes) {
    const more = [
      c.pending && `pending ${c.pending}`,
      c.stale && `stale ${c.stale}`,
      c.unchecked && `unchecked ${c.unchecked}`,
    ].filter(Boolean);
    out(
      `index   ${`${c.table}.${c.column}`.padEnd(24)} epoch ${String(c.indexEpoch ?? "-").padEnd(3)} ok ${c.ok}  failed ${c.failed}${more.length ? `  ${more.join("  ")}` : ""}\n`,
    );
  }
  for (const f of v.failures) out(`error: ${f.table} ${f.id} ${f.column}: ${f.problem}\n`);
  if (v.failuresTotal > v.failures.length)
    out(`… and ${v.failuresTotal - v.failures.length} more (see the counts)\n`);
  if (!v.complete) out(`interrupted after id ${v.lastId}: resume with --from ${v.lastId}\n`);
  out(
    v.ok
      ? `ok: every sealed value opens under its row and every blind index matches its value\n`
      : `failed: ${v.failuresTotal} value(s) or index(es) do not verify\n`,
  );
}
