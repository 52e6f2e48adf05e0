import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import type { App } from "../../cmd/server/wire.js";
import {
  startEmbeddedPostgres,
  type EmbeddedPostgres,
} from "../../internal/pkg/embedded_pg/embedded_pg.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { startTestApp } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { databaseProxy } from "../helpers/proxy.js";
import { createUserLoad, sleep, tally } from "./load.js";

const silent = createLogger({ level: "silent", format: "json" });

describe("PostgreSQL restarts under write load", () => {
  const dir = mkdtempSync(join(tmpdir(), "kbts-restart-"));
  let pg: EmbeddedPostgres | undefined;
  let app: App | undefined;
  let proxy: Awaited<ReturnType<typeof databaseProxy>> | undefined;
  afterAll(async () => {
    await app?.stop();
    await proxy?.close();
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("loses no acknowledged write, answers every call with a retryable code, and recovers", async () => {
    pg = await startEmbeddedPostgres(dir, silent);
    // The service reaches PostgreSQL through a proxy, so the restarted server
    // (on a new port) is the same address to it.
    proxy = await databaseProxy(new URL(pg.url));
    app = await startTestApp(proxy.url);
    const load = createUserLoad(app.grpcPort, { prefix: "restart" });
    await sleep(1500);
    await pg.stop();
    proxy.down();
    await sleep(1000);
    pg = await startEmbeddedPostgres(dir, silent);
    proxy.retarget(Number(new URL(pg.url).port));
    proxy.up();
    const restartedAt = Date.now();
    // Until a write sent after the restart succeeds (bounded by the timeout).
    while (!load.outcomes.some((o) => o.sentAt > restartedAt && o.code === grpc.status.OK)) {
      await sleep(100);
    }
    await sleep(1000);
    const outcomes = await load.stop();

    const codes = tally(outcomes);
    expect(Object.keys(codes).sort(), JSON.stringify(codes)).toEqual(
      expect.arrayContaining(["OK"]),
    );
    for (const name of Object.keys(codes))
      expect(["OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"], JSON.stringify(codes)).toContain(name);
    expect(outcomes.some((o) => o.code === grpc.status.UNAVAILABLE)).toBe(true);
    const acknowledged = outcomes.filter((o) => o.code === grpc.status.OK).map((o) => o.username);
    const stored = await query<{ username: string }>(
      pg.url,
      "SELECT username FROM users WHERE username = ANY($1)",
      [acknowledged],
    );
    expect(stored.length).toBe(acknowledged.length);
  });
});
