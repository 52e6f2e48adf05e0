import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { basename, dirname, join, resolve } from "node:path";
import type { Logger } from "../pkg/log/logger.js";

export interface EmbeddedPostgres {
  /** postgres:// URL of the `postgres` database, password included. */
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * Starts PostgreSQL from the `embedded-postgres` npm package with its cluster
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
  const port = await freePort();

  const EmbeddedPostgresClass = await importWithoutProcessHooks();
  const pg = new EmbeddedPostgresClass({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a
    // `postgres` system user it creates if missing.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--encoding=UTF8", "--no-instructions"],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: (message: string) => log.debug({ postgres: message.trim() }, "embedded postgres"),
    onError: (message: unknown) =>
      log.debug({ postgres: String(message).trim() }, "embedded postgres"),
  });
  if (fresh) {
    log.info({ dataDir }, "initialising embedded PostgreSQL cluster");
    await pg.initialise();
  }
  try {
    await pg.start();
  } catch {
    throw new Error(
      `embedded PostgreSQL in ${dataDir} did not start (another server using it? see ${join(dataDir, "postmaster.pid")})`,
    );
  }
  return { url: urlFor(port), dataDir, stop: () => pg.stop() };
}

// postmaster.pid: line 1 the postmaster's pid, line 4 its port. A stale file
// (crash) names a pid that is gone, or one that is no postmaster of ours.
function runningPort(dataDir: string): number | undefined {
  let lines: string[];
  try {
    lines = readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n");
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return undefined;
  }
  return port;
}

// embedded-postgres registers process hooks (via async-exit-hook) on signals,
// `beforeExit` and `exit` that stop the cluster and call process.exit(0): that
// would cut the graceful drain short and overwrite our exit code. We stop the
// cluster ourselves, last, so drop every hook its import adds.
const hookedEvents = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "exit", "message"];

async function importWithoutProcessHooks() {
  const before = new Map(hookedEvents.map((e) => [e, new Set(process.listeners(e as "exit"))]));
  const mod = await import("embedded-postgres");
  for (const event of hookedEvents) {
    for (const listener of process.listeners(event as "exit")) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return mod.default;
}

/** Where clusters go when the working directory is closed to the `postgres` user. */
export const SHARED_CLUSTERS_DIR = "/var/lib/kratos-boilerplate-ts";

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

function closedAncestor(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(d) && (statSync(d).mode & 0o001) === 0) return d;
    if (dirname(d) === d) return undefined;
  }
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
