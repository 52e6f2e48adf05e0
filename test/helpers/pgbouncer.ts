import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Debian's PgBouncer (`apt-get install pgbouncer`; .ci/run installs it). */
export const PGBOUNCER = "/usr/sbin/pgbouncer";

export interface Pgbouncer {
  /** A URL of `database` through this PgBouncer: the server's user, no password. */
  url(database: string): string;
  /** Everything it logged so far. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * A PgBouncer of its own in transaction mode, on a free loopback port, in
 * front of the server `serverUrl` names: every database there, as the
 * URL's user (and password, which it logs in with, SCRAM included). Clients
 * come in on trust, so the embedded PostgreSQL's password never needs to be
 * in a client's URL. `poolSize`: server connections per database.
 */
export async function startPgbouncer(
  serverUrl: string,
  { poolSize = 4 }: { poolSize?: number } = {},
): Promise<Pgbouncer> {
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username);
  const password = decodeURIComponent(server.password);
  if (!/^[A-Za-z0-9_.-]+$/.test(user) || /['\\\s]/.test(password))
    throw new Error("startPgbouncer: the user or password needs quoting this helper does not do");
  const dir = mkdtempSync(join(tmpdir(), "kbts-pgbouncer-"));
  const port = await freePort();
  const ini = join(dir, "pgbouncer.ini");
  const login = [
    `host=${server.hostname}`,
    `port=${server.port || "5432"}`,
    `user=${user}`,
    ...(password ? [`password='${password}'`] : []),
  ].join(" ");
  // Read before it drops root (below), so readable by root alone.
  writeFileSync(
    ini,
    `[databases]
* = ${login}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir =
auth_type = trust
auth_file = ${join(dir, "userlist.txt")}
pool_mode = transaction
default_pool_size = ${poolSize}
max_client_conn = 500
`,
    { mode: 0o600 },
  );
  writeFileSync(join(dir, "userlist.txt"), `"${user}" ""\n`, { mode: 0o600 });
  // PgBouncer refuses to run as root; -u switches once it has read its files.
  const args = process.getuid?.() === 0 ? ["-u", unprivilegedUser(), ini] : [ini];
  const child = spawn(PGBOUNCER, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await listening(port, () => child.exitCode !== null);
  } catch (err) {
    await stop();
    throw new Error(`pgbouncer did not start: ${(err as Error).message}\n${out}`);
  }
  return {
    url: (database) => `postgres://${user}@127.0.0.1:${port}/${database}`,
    output: () => out,
    stop,
  };
}

function unprivilegedUser(): string {
  try {
    execFileSync("id", ["-u", "postgres"], { stdio: "ignore" });
    return "postgres";
  } catch {
    return "nobody";
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Resolves once `port` accepts a connection; rejects when `gone()` or after about 10 s. */
async function listening(port: number, gone: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (gone()) throw new Error("it exited");
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (accepted) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on port ${port}`);
}
