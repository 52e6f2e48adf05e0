import { request } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HashFieldRequestSchema, KmsService } from "../../api/kms/v1/kms_pb.js";
import { grpcClient } from "../helpers/clients.js";
import { testRootKey } from "../helpers/app.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { processesWith, spawnServer } from "../helpers/process.js";

// server.processes: two server processes behind the same two ports.

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(join(tmpdir(), "kbts-cluster-"));
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

const config = (name: string, source: string) => {
  const path = join(dir, name);
  writeFileSync(
    path,
    `server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" }, processes: 2 }
data: { database: { source: "${source}", migrate: up } }
kms: { root_key: "${testRootKey}" }
auth: { enabled: false }
log: { level: info, format: json }
`,
  );
  return path;
};
const noDbEnv = { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined };

/** Which worker answered a scrape of /metrics, on a connection of its own. */
const workerOf = (port: number) =>
  new Promise<string>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/metrics", agent: false }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(/worker="(\d+)"/.exec(body)?.[1] ?? "none"));
    });
    req.on("error", reject);
    req.end();
  });

describe("several server processes", () => {
  it("share both ports, each process serving in turn; a process that dies is replaced; SIGTERM stops them all, exit 0", async () => {
    const conf = config("two.yaml", db.url);
    const server = spawnServer(["-conf", conf], { env: noDbEnv });
    const ports = JSON.parse(await server.waitFor(/"msg":"all processes listening/)) as {
      grpc: number;
      http: number;
      processes: number;
    };
    expect(ports.processes).toBe(2);
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add(await workerOf(ports.http));
    expect([...seen].sort()).toEqual(["1", "2"]);
    const kms = grpcClient(KmsService, ports.grpc);
    const hashes = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const { hash } = await kms.unary(
        KmsService.method.hashField,
        create(HashFieldRequestSchema, { fieldName: "email", value: "a@example.com" }),
      );
      hashes.add(hash);
    }
    // Every process hashes under the same keys.
    expect(hashes.size).toBe(1);
    kms.close();

    // One process killed: another takes its place.
    const workers = processesWith(conf).filter((pid) => pid !== String(server.child.pid));
    expect(workers).toHaveLength(2);
    process.kill(Number(workers[0]), "SIGKILL");
    await server.waitFor(/a server process died; replacing it/);
    // The replacement serves once it says so: its start-up may take a while
    // on a busy machine (bounded only by the test's timeout).
    while ((server.output().match(/"msg":"listening/g) ?? []).length < 3) {
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < 40 && !seen.has("3"); i++) {
      seen.add(await workerOf(ports.http).catch(() => "none"));
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(seen.has("3")).toBe(true);

    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(processesWith(conf)).toEqual([]);
  }, 90_000);

  it("stops the start-up, exit 1, when a process cannot start, rather than start it again and again", async () => {
    const conf = config(
      "unreachable.yaml",
      "postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=2",
    );
    const server = spawnServer(["-conf", conf], { env: noDbEnv });
    expect(await server.exited).toBe(1);
    expect(server.output()).toMatch(/a server process failed to start/);
    expect(processesWith(conf)).toEqual([]);
  }, 60_000);
});
