import pg from "pg";
import { abandon, backendPid, connect, disconnect, isConnectionLost } from "../connect.js";
import type { MigratorOptions } from "../options.js";
import { endSession, replyTimeoutMs } from "../session.js";

// A rehearsal's copy is dropped however its run ends: over the target's
// connection, else over a fresh one; and copies that earlier runs could not
// drop (a second SIGINT, a crash, a server gone meanwhile) are swept by the
// next rehearsal on the server.

/** What a rehearsal's copy is called: nothing else on the server is swept. */
export const COPY_NAME = /^migrate_rehearsal_[0-9a-f]{12}$/;

/**
 * The application_name of the target's session while its copy exists (set
 * before the copy is created, reset after it is dropped): a sweep by another
 * run leaves alone the copies whose owner is alive, even while no session is
 * connected to them (pg_dump reads the target, not the copy).
 */
export const ownerName = (copy: string) => `migrate ${copy}`;

/**
 * The comment a copy carries from just after its creation: the database it
 * rehearses. A sweep takes only the leftovers of its own target's
 * rehearsals, never another database's (another team's, another test's).
 */
export const copyComment = (target: string) => `migrate rehearsal of ${target}`;

/** Marks the new copy `name` as a rehearsal of the target `target` is connected to. */
export async function markCopy(target: pg.Client, name: string): Promise<void> {
  const comment = copyComment(await currentDatabase(target));
  await target.query(`COMMENT ON DATABASE ${name} IS ${pg.escapeLiteral(comment)}`);
}

/**
 * Drops the rehearsal copies of this target left by earlier runs: those this
 * role may drop, no session is connected to, and no live rehearsal owns.
 * Each is logged; one that cannot be dropped (a session connected
 * meanwhile) is left for a later sweep.
 */
export async function sweepCopies(opts: MigratorOptions, target: pg.Client): Promise<string[]> {
  const { rows } = await target.query<{ name: string }>(
    `SELECT d.datname AS name FROM pg_database d
      WHERE d.datname ~ $1 AND pg_has_role(d.datdba, 'MEMBER')
        AND shobj_description(d.oid, 'pg_database') = $3
        AND NOT EXISTS (SELECT FROM pg_stat_activity a
                         WHERE a.datname = d.datname OR a.application_name = $2 || d.datname)
      ORDER BY d.datname`,
    [COPY_NAME.source, ownerName(""), copyComment(await currentDatabase(target))],
  );
  const dropped: string[] = [];
  for (const { name } of rows) {
    // Without FORCE: a session that connected since the look keeps it.
    try {
      await target.query(`DROP DATABASE IF EXISTS ${name}`);
      dropped.push(name);
      opts.log.warn({ database: name }, "dropped a rehearsal database left by an earlier run");
    } catch (err) {
      if (isConnectionLost(err)) throw err;
      opts.log.warn(
        { database: name, err: (err as Error).message },
        "could not drop a rehearsal database left by an earlier run",
      );
    }
  }
  return dropped;
}

async function currentDatabase(client: pg.Client): Promise<string> {
  return (await client.query<{ db: string }>("SELECT current_database() AS db")).rows[0]!.db;
}

/**
 * Drops the copy `name` over the target's connection, or over a fresh one
 * when that connection is lost. Never throws: a copy that stays is logged
 * (and swept by a later rehearsal).
 */
export async function dropCopy(opts: MigratorOptions, target: pg.Client, name: string) {
  try {
    await target.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await target.query("RESET application_name").catch(() => undefined);
  } catch (err) {
    if (isConnectionLost(err)) return dropAfterLoss(opts, target, name);
    opts.log.warn(
      { database: name, err: (err as Error).message },
      "could not drop the rehearsal database",
    );
  }
}

/**
 * The target's connection was lost while it created or dropped the copy, or
 * before: the statement may have run, its reply lost. Over a fresh
 * connection, ends the old session if it still runs (so a CREATE DATABASE
 * in it has committed or rolled back), then drops the copy if it exists.
 */
export async function dropAfterLoss(opts: MigratorOptions, lost: pg.Client, name: string) {
  const pid = backendPid(lost);
  abandon(lost);
  try {
    const client = await connect(opts.databaseUrl, opts.connectTimeoutMs, {
      replyTimeoutMs: replyTimeoutMs(opts, 1),
    });
    try {
      const ended = await endSession(client, pid, opts.connectTimeoutMs);
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      if (!ended)
        opts.log.warn(
          { database: name, pid },
          "the lost session is still running: a rehearsal database it creates is dropped by the next rehearsal",
        );
    } finally {
      await disconnect(client, opts.connectTimeoutMs);
    }
  } catch (err) {
    opts.log.warn(
      { database: name, err: (err as Error).message },
      "could not drop the rehearsal database after the connection was lost; the next rehearsal drops it",
    );
  }
}
