import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newKeyEvents } from "../../internal/data/key_listener.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { databaseProxy } from "../helpers/proxy.js";

// The key-change listener keeps trying while the database is away; its
// warnings must space out, not fill the log once a second.

let db: TestDatabase;
let proxy: Awaited<ReturnType<typeof databaseProxy>>;
beforeAll(async () => {
  db = await createTestDatabase();
  proxy = await databaseProxy(new URL(db.url));
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`never: ${what}`);
}

describe("the kms listener while the database is down", () => {
  it("When the database goes away, Then each warning announces a longer wait than the last, and it reconnects once back", async () => {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split("\n").filter(Boolean))
          lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    const log = createLogger({ level: "info", format: "json", destination });
    let changes = 0;
    const stop = await newKeyEvents(proxy.url, log).watch(() => changes++);
    try {
      proxy.down();
      const warnings = () => lines.filter((l) => l.level === "warn");
      await until("four warnings", () => warnings().length >= 4);
      expect(
        warnings()
          .slice(0, 4)
          .map((w) => w.retryInMs),
      ).toEqual([1000, 2000, 4000, 8000]);
      proxy.up();
      await until("reconnected", () => lines.some((l) => l.msg === "kms listener reconnected"));
      // Changes may have been missed meanwhile: the cache is told once.
      expect(changes).toBe(1);
    } finally {
      await stop();
    }
  }, 60_000);
});
