import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import type pg from "pg";
import { analyse } from "../analyse.js";
import { connect, disconnect } from "../connect.js";
import type { MigratorOptions } from "../options.js";
import type { MigrationFile } from "../source.js";
import type { Applied } from "../state.js";

// The throwaway copy a rehearsal runs in: a database on the target's server
// holding the target's schema (no rows), always dropped after.

/** The rehearsal could not be set up: exit 2, nothing ran anywhere. */
export class RehearsalUnavailableError extends Error {
  override name = "RehearsalUnavailableError";
}

/** dump: pg_dump --schema-only of the target; replay: the applied migration files, in order. */
export type SchemaSource = "dump" | "replay";

/** The copy: its name and URL, and how its schema was made. */
export interface Copy {
  name: string;
  url: string;
  schemaFrom: SchemaSource;
}

/**
 * Creates `migrate_rehearsal_<random>` beside the target (same encoding and
 * collation), fills it with the target's schema, and hands it to `fn`; drops
 * it afterwards whatever happened (a second SIGINT, which exits at once, is
 * the one way to leave it: its name says what it is).
 */
export async function withCopy<T>(
  opts: MigratorOptions,
  target: pg.Client,
  applied: Applied[],
  files: MigrationFile[],
  wanted: SchemaSource | undefined,
  fn: (copy: Copy) => Promise<T>,
): Promise<T> {
  const name = `migrate_rehearsal_${randomBytes(6).toString("hex")}`;
  const { rows } = await target.query<{ enc: string; coll: string; ctype: string }>(
    `SELECT pg_encoding_to_char(encoding) AS enc, datcollate AS coll, datctype AS ctype
       FROM pg_database WHERE datname = current_database()`,
  );
  const db = rows[0]!;
  try {
    await target.query(
      `CREATE DATABASE ${name} TEMPLATE template0 ENCODING '${db.enc}' LC_COLLATE '${db.coll}' LC_CTYPE '${db.ctype}'`,
    );
  } catch (err) {
    throw new RehearsalUnavailableError(
      `cannot create the rehearsal database: ${(err as Error).message} ` +
        "(the role needs CREATEDB; --rehearse=target rehearses transactional files on the target itself)",
    );
  }
  try {
    const url = new URL(opts.databaseUrl);
    url.pathname = `/${name}`;
    const copy = { name, url: url.toString(), schemaFrom: "dump" as SchemaSource };
    copy.schemaFrom = await loadSchema(opts, target, copy.url, applied, files, wanted);
    return await fn(copy);
  } finally {
    await target.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((err: unknown) => {
      opts.log.warn(
        { database: name, err: (err as Error).message },
        "could not drop the rehearsal database",
      );
    });
  }
}

// pg_dump when it can dump this server (its major version at least the
// server's), else the applied files replayed; `wanted` forces one.
async function loadSchema(
  opts: MigratorOptions,
  target: pg.Client,
  url: string,
  applied: Applied[],
  files: MigrationFile[],
  wanted: SchemaSource | undefined,
): Promise<SchemaSource> {
  let why = "";
  if (wanted !== "replay") {
    const dumped = await dumpSchema(opts.databaseUrl, target, opts.lockTimeoutMs);
    if ("sql" in dumped) {
      await inCopy(opts, url, (c) => c.query(dumped.sql));
      return "dump";
    }
    why = dumped.why;
    if (wanted === "dump") throw new RehearsalUnavailableError(`cannot dump the schema: ${why}`);
  }
  const byName = new Map(files.map((f) => [f.name, f]));
  const missing = applied.find((a) => !byName.has(a.name));
  if (missing) {
    throw new RehearsalUnavailableError(
      `cannot copy the schema: ${why ? `${why}; ` : ""}and ${missing.name} was applied but its file is gone, so the files cannot replay it`,
    );
  }
  await inCopy(opts, url, async (c) => {
    for (const a of applied) {
      const file = byName.get(a.name)!;
      for (const st of analyse(file.up, file.upPath, "file").statements) {
        await c.query(st.sql).catch((err: unknown) => {
          throw new RehearsalUnavailableError(
            `cannot copy the schema by replaying the applied files: ${file.upPath}:${st.line}: ${(err as Error).message}`,
          );
        });
      }
    }
  });
  return "replay";
}

/** A schema dump that takes longer than this is a stuck one (a lock it waits on). */
const DUMP_TIMEOUT_MS = 10 * 60_000;

async function dumpSchema(
  url: string,
  target: pg.Client,
  lockWaitMs: number,
): Promise<{ sql: string } | { why: string }> {
  const pgDump = process.env.PG_DUMP || "pg_dump";
  const version = spawnSync(pgDump, ["--version"], { encoding: "utf8" });
  if (version.status !== 0) return { why: `${pgDump} not found` };
  const major = Number(/(\d+)(?:\.\d+)?/.exec(version.stdout)?.[1] ?? 0);
  const { rows } = await target.query<{ v: number }>(
    "SELECT current_setting('server_version_num')::int AS v",
  );
  const server = Math.floor(rows[0]!.v / 10000);
  if (major < server)
    return { why: `${pgDump} ${major} cannot dump a PostgreSQL ${server} server` };
  // The password goes in the environment, not the arguments: arguments are
  // visible to every user of the host in the process list.
  const withoutPassword = new URL(url);
  const password = decodeURIComponent(withoutPassword.password);
  withoutPassword.password = "";
  const dump = spawnSync(
    pgDump,
    [
      "--schema-only",
      // pg_dump holds ACCESS SHARE on every table it reaches until it ends:
      // it must not queue (and make traffic queue) behind a waiting lock.
      `--lock-wait-timeout=${lockWaitMs}`,
      "--no-owner",
      "--no-privileges",
      "--no-subscriptions",
      "--no-publications",
      `--dbname=${withoutPassword.href}`,
    ],
    {
      encoding: "utf8",
      maxBuffer: 256 * 1024 * 1024,
      env: password ? { ...process.env, PGPASSWORD: password } : process.env,
      timeout: DUMP_TIMEOUT_MS,
    },
  );
  if (dump.error && (dump.error as NodeJS.ErrnoException).code === "ETIMEDOUT")
    return { why: `${pgDump} did not finish within ${DUMP_TIMEOUT_MS / 60_000} minutes` };
  if (dump.status !== 0) return { why: `${pgDump} failed: ${dump.stderr.trim().split("\n")[0]}` };
  // psql meta-commands (\restrict, added by 2025's point releases) are not SQL.
  return { sql: dump.stdout.replace(/^\\(?:restrict|unrestrict)\b.*$/gm, "") };
}

async function inCopy(opts: MigratorOptions, url: string, fn: (c: pg.Client) => Promise<unknown>) {
  const client = await connect(url, opts.connectTimeoutMs);
  try {
    await fn(client);
  } catch (err) {
    if (err instanceof RehearsalUnavailableError) throw err;
    throw new RehearsalUnavailableError(
      `cannot load the schema into the rehearsal database: ${(err as Error).message}`,
    );
  } finally {
    await disconnect(client, opts.connectTimeoutMs);
  }
}
