import { randomBytes } from "node:crypto";
import pg from "pg";
import { analyse } from "../analyse.js";
import { connect, disconnect, isConnectionLost } from "../connect.js";
import type { MigratorOptions } from "../options.js";
import { cancelBackend, cancelledBy } from "../cancel.js";
import type { MigrationFile } from "../source.js";
import type { Applied } from "../state.js";
import { dumpSchema } from "./dump.js";
import { dropAfterLoss, dropCopy, markCopy, ownerName, sweepCopies } from "./leftovers.js";

// The throwaway copy a rehearsal runs in: a database on the target's server
// holding the target's schema (no rows), always dropped after.

/** The rehearsal could not be set up: exit 2, nothing ran anywhere. */
export class RehearsalUnavailableError extends Error {
  override name = "RehearsalUnavailableError";
}

/**
 * The signal stopped the replay that fills the copy: nothing ran on it (it
 * is dropped). Named as its parent, which the CLI maps to exit 2 by name.
 */
export class CopyStoppedError extends RehearsalUnavailableError {}

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
 * it afterwards whatever happened, over a fresh connection if the target's
 * is lost. Copies earlier runs left behind (a second SIGINT exits at once;
 * a crash) are dropped first when nothing uses them. `signal` stops a
 * replay (its statement cancelled, no further one begun).
 */
export async function withCopy<T>(
  opts: MigratorOptions,
  target: pg.Client,
  applied: Applied[],
  files: MigrationFile[],
  wanted: SchemaSource | undefined,
  fn: (copy: Copy) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const name = `migrate_rehearsal_${randomBytes(6).toString("hex")}`;
  await sweepCopies(opts, target).catch((err: unknown) => {
    if (isConnectionLost(err)) throw err;
    opts.log.warn({ err: (err as Error).message }, "could not look for rehearsal databases left");
  });
  const { rows } = await target.query<{ enc: string; coll: string; ctype: string }>(
    `SELECT pg_encoding_to_char(encoding) AS enc, datcollate AS coll, datctype AS ctype
       FROM pg_database WHERE datname = current_database()`,
  );
  const db = rows[0]!;
  // Before the copy exists: a sweep by another run sees it owned at once.
  await target.query(`SET application_name = '${ownerName(name)}'`);
  try {
    await target.query(
      `CREATE DATABASE ${name} TEMPLATE template0 ENCODING '${db.enc}' LC_COLLATE '${db.coll}' LC_CTYPE '${db.ctype}'`,
    );
  } catch (err) {
    if (isConnectionLost(err)) {
      // The CREATE may have run, its reply lost.
      await dropAfterLoss(opts, target, name);
      throw new RehearsalUnavailableError(
        `cannot create the rehearsal database: ${(err as Error).message}`,
      );
    }
    await target.query("RESET application_name").catch(() => undefined);
    throw new RehearsalUnavailableError(
      `cannot create the rehearsal database: ${(err as Error).message} ` +
        "(the role needs CREATEDB; --rehearse=target rehearses transactional files on the target itself)",
    );
  }
  try {
    await markCopy(target, name);
    await copySettings(opts, target, name);
    const url = new URL(opts.databaseUrl);
    url.pathname = `/${name}`;
    const copy = { name, url: url.toString(), schemaFrom: "dump" as SchemaSource };
    copy.schemaFrom = await loadSchema(opts, target, copy.url, applied, files, wanted, signal);
    return await fn(copy);
  } finally {
    await dropCopy(opts, target, name);
  }
}

/**
 * The target's own settings (ALTER DATABASE … SET, ALTER ROLE … IN DATABASE
 * … SET for this role) onto the copy, as this session has them: a
 * search_path set there decides where the files' unqualified names land, so
 * the copy must resolve them alike. One that cannot be copied is a warning.
 */
async function copySettings(opts: MigratorOptions, target: pg.Client, name: string) {
  const { rows } = await target.query<{ role: boolean; name: string }>(
    `SELECT s.setrole <> 0 AS role, split_part(c, '=', 1) AS name
       FROM pg_db_role_setting s, unnest(s.setconfig) AS c
      WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = session_user))`,
  );
  for (const r of rows) {
    const setting = r.name
      .split(".")
      .map((part) => pg.escapeIdentifier(part))
      .join(".");
    const on = r.role ? `ROLE SESSION_USER IN DATABASE ${name}` : `DATABASE ${name}`;
    await target.query(`ALTER ${on} SET ${setting} FROM CURRENT`).catch((err: unknown) => {
      if (isConnectionLost(err)) throw err;
      opts.log.warn(
        { database: name, setting: r.name, err: (err as Error).message },
        "could not give the rehearsal database the target's setting",
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
  signal: AbortSignal | undefined,
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
    const stopped = () =>
      new CopyStoppedError(
        `interrupted by ${String(signal!.reason)} while replaying the applied files`,
      );
    const cancel = () => void cancelBackend(opts, c);
    signal?.addEventListener("abort", cancel, { once: true });
    try {
      for (const a of applied) {
        const file = byName.get(a.name)!;
        for (const st of analyse(file.up, file.upPath, "file").statements) {
          if (signal?.aborted) throw stopped();
          await c.query(st.sql).catch((err: unknown) => {
            if (cancelledBy(err, signal, c)) throw stopped();
            throw new RehearsalUnavailableError(
              `cannot copy the schema by replaying the applied files: ${file.upPath}:${st.line}: ${(err as Error).message}`,
            );
          });
        }
      }
    } finally {
      signal?.removeEventListener("abort", cancel);
    }
  });
  return "replay";
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
