import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { query } from "../helpers/catalog.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { startServerProcess, writeServerConfig } from "../helpers/process.js";
import { createUserLoad, sleep, tally } from "./load.js";

describe("SIGTERM under load", () => {
  const dir = mkdtempSync(join(tmpdir(), "kbts-sigterm-"));
  let db: TestDatabase | undefined;
  afterAll(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("finishes the calls in flight, exits 0, and loses no acknowledged write", async () => {
    db = await createTestDatabase();
    const conf = writeServerConfig(join(dir, "server.yaml"), db.url, "shutdown_timeout: 20s");
    const { server, ports: listening } = await startServerProcess(conf);
    const load = createUserLoad(listening.grpc, { prefix: "term" });
    await sleep(1500);
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(server.output()).toMatch(/"drained":true/);
    await sleep(500);
    const outcomes = await load.stop();

    const codes = tally(outcomes);
    for (const name of Object.keys(codes))
      expect(["OK", "UNAVAILABLE"], JSON.stringify(codes)).toContain(name);
    const acknowledged = outcomes.filter((o) => o.code === grpc.status.OK).map((o) => o.username);
    expect(acknowledged.length).toBeGreaterThan(0);
    const stored = await query<{ username: string }>(
      db.url,
      "SELECT username FROM users WHERE username = ANY($1)",
      [acknowledged],
    );
    expect(stored.length).toBe(acknowledged.length);
  });
});
