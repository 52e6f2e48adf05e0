import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import { wireApp, type App } from "../../cmd/server/wire.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { testConfig } from "../helpers/app.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { spawnScript } from "../helpers/process.js";

// `kms reencrypt` as a deploy script runs it: a real process against the
// service's gRPC port, with a token, exit codes and --json.

const dir = mkdtempSync(join(tmpdir(), "kbts-kms-cli-"));
const token = randomBytes(16).toString("hex");
const tokenFile = join(dir, "token");
let db: TestDatabase;
let app: App;
beforeAll(async () => {
  writeFileSync(tokenFile, `${token}\n`);
  db = await createTestDatabase();
  const sha256 = createHash("sha256").update(token).digest("hex");
  app = await wireApp(
    testConfig(db.url, {
      auth: {
        enabled: true,
        tokens: [{ name: "ops", sha256, scopes: ["kms.admin", "users.write"] }],
      },
    }),
    createLogger({ level: "silent", format: "json" }),
  );
});
afterAll(async () => {
  await app?.stop();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function kms(args: string[], env: NodeJS.ProcessEnv = {}) {
  const proc = spawnScript("cmd/kms/main.ts", args, { env: { KMS_TOKEN: undefined, ...env } });
  let stdout = "";
  proc.child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  const code = await proc.exited;
  return { code, stdout, output: proc.output() };
}
const addr = () => ["--addr", `127.0.0.1:${app.grpcPort}`];

describe("kms reencrypt", () => {
  it("refuses a careless command line with exit 2, naming the problem", async () => {
    for (const [args, message] of [
      [["reencrypt", "start", "--below", "0"], /--below: expected an integer from 1/],
      [["reencrypt", "start", "--batch-size", "abc"], /--batch-size: expected an integer/],
      [["reencrypt", "start", "--pause", "soon"], /--pause: expected a duration/],
      [["reencrypt", "resume"], /Unknown argument|name a command/],
      [["reencrypt", "status", "--addr", "nowhere"], /--addr: expected host:port/],
    ] as const) {
      const r = await kms([...args]);
      expect(r.code, r.output).toBe(2);
      expect(r.output).toMatch(message);
    }
  });

  it("without a token answers exit 1 with the service's refusal", async () => {
    const r = await kms(["reencrypt", "status", ...addr()]);
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/UNAUTHENTICATED \(UNAUTHENTICATED\): missing bearer token/);
  });

  it("starts a job and follows it to its end, exit 0, the result as JSON", async () => {
    const headers = { authorization: `Bearer ${token}` };
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` });
    const users = createClient(UserService, transport);
    for (let i = 0; i < 5; i++) {
      await users.createUser(
        { username: `cli_${i}`, password: "passw0rd-long", email: `cli${i}@example.com` },
        { headers },
      );
    }
    await createClient(KmsService, transport).rotateDataKey({ reason: "test" }, { headers });
    const before = await kms(["reencrypt", "status", "--json", ...addr()], { KMS_TOKEN: token });
    expect(before.code).toBe(0);
    expect(JSON.parse(before.stdout)).toMatchObject({ state: "none" });

    const r = await kms([
      "reencrypt",
      "start",
      "--watch",
      "--json",
      "--batch-size",
      "2",
      "--token-file",
      tokenFile,
      ...addr(),
    ]);
    expect(r.code, r.output).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      state: "finished",
      rowsDone: 5,
      rowsRemaining: 0,
      rowsFailed: 0,
    });
    expect(r.output).not.toContain(token);
  }, 60_000);
});

describe("kms index-key", () => {
  it("refuses a careless command line with exit 2, naming the problem", async () => {
    for (const [args, message] of [
      [["index-key", "rotate", "--batch-size", "0"], /--batch-size: expected an integer from 1/],
      [["index-key", "rotate", "--pause", "2h"], /--pause: expected a duration/],
      [["index-key", "drop"], /Unknown argument|name a command/],
      [["index-key"], /name a command: rotate or status/],
    ] as const) {
      const r = await kms([...args]);
      expect(r.code, r.output).toBe(2);
      expect(r.output).toMatch(message);
    }
  });

  it("replaces the index key and follows it to its end, exit 0, the result as JSON", async () => {
    const before = await kms(["index-key", "status", "--json", ...addr()], { KMS_TOKEN: token });
    expect(before.code, before.output).toBe(0);
    expect(JSON.parse(before.stdout)).toMatchObject({ phase: "none", state: "none" });

    const r = await kms(
      ["index-key", "rotate", "--watch", "--json", "--batch-size", "2", ...addr()],
      { KMS_TOKEN: token },
    );
    expect(r.code, r.output).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      started: true,
      phase: "done",
      state: "finished",
      rowsRemaining: 0,
      rowsFailed: 0,
    });
    expect(r.output).not.toContain(token);
  }, 60_000);
});
