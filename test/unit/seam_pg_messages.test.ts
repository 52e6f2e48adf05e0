import { createServer, type AddressInfo, type Server } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isDatabaseUnavailable, writtenFor } from "../../internal/pkg/dberr/dberr.js";
import { installedVersion, within } from "../helpers/seams.js";

// isDatabaseUnavailable knows node-postgres's connection failures by their
// texts (pg gives them no code). These are produced here by the installed pg
// against stand-in servers, no PostgreSQL: a reworded one fails here first.

let closing: Server;
let silent: Server;
const port = (s: Server) => (s.address() as AddressInfo).port;
const listen = (s: Server) => new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));

beforeAll(async () => {
  // Hangs up on every connection at once.
  closing = createServer((socket) => socket.destroy());
  // Takes connections and never says a word.
  silent = createServer(() => undefined);
  await Promise.all([listen(closing), listen(silent)]);
});

afterAll(() => {
  closing.close();
  silent.close();
});

const failure = (p: Promise<unknown>) =>
  p.then(
    () => expect.unreachable("expected a failure"),
    (e: unknown) => e as Error,
  );
const client = (server: Server) =>
  new pg.Client({ host: "127.0.0.1", port: port(server), user: "x" });

describe("node-postgres's connection failures (pkg/dberr)", () => {
  it.each(["pg", "pg-pool"] as const)("was written for the installed %s", (pkg) => {
    // pg-pool as pg itself finds it.
    const version = installedVersion(pkg, pkg === "pg" ? undefined : "pg");
    expect(within(version, writtenFor[pkg]), `${pkg} ${version}: re-read dberr.ts`).toBe(true);
  });

  it("When the server hangs up during connect, Then the error is unavailability", async () => {
    const err = await failure(client(closing).connect());
    expect(err.message).toBe("Connection terminated unexpectedly");
    expect(isDatabaseUnavailable(err)).toBe(true);
  });

  it("When the server does not answer within the pool's connect timeout, Then the error is unavailability", async () => {
    const pool = new pg.Pool({
      host: "127.0.0.1",
      port: port(silent),
      user: "x",
      connectionTimeoutMillis: 100,
    });
    const err = await failure(pool.query("select 1"));
    await pool.end().catch(() => undefined);
    expect(isDatabaseUnavailable(err)).toBe(true);
  });

  it("When the pool's only connection never comes and another caller waits, Then its timeout is unavailability", async () => {
    const pool = new pg.Pool({
      host: "127.0.0.1",
      port: port(silent),
      user: "x",
      max: 1,
      connectionTimeoutMillis: 200,
    });
    const first = pool.connect().catch(() => undefined);
    const err = await failure(pool.connect());
    await first;
    await pool.end().catch(() => undefined);
    expect(err.message).toBe("timeout exceeded when trying to connect");
    expect(isDatabaseUnavailable(err)).toBe(true);
  });

  it("When a closed client is asked a query, Then the error is unavailability", async () => {
    const c = client(silent);
    await c.end();
    const err = await failure(c.query("select 1"));
    expect(err.message).toBe("Client was closed and is not queryable");
    expect(isDatabaseUnavailable(err)).toBe(true);
  });
});
