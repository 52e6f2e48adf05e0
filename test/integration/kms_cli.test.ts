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
      [["reencrypt", "resume"], /unknown command 'resume'.*see kms --help/],
      [["reencrypt", "status", "--addr", "nowhere"], /--addr: expected host:port/],
    ] as const) {
      const r = await kms([...args]);
      expect(r.code, r.output).toBe(2);
      expect(r.output).toMatch(message);
    }
  });

  it("without a token answers exit 1 with the service's refusal, saying where a token is looked for", async () => {
    const r = await kms(["reencrypt", "status", ...addr()]);
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/UNAUTHENTICATED \(UNAUTHENTICATED\): missing bearer token/);
    expect(r.output).toMatch(/set KMS_TOKEN or pass --token-file FILE/);
  });

  it("with a wrong token says nothing of KMS_TOKEN: one was sent", async () => {
    const r = await kms(["reencrypt", "status", ...addr()], { KMS_TOKEN: "not-the-token" });
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/UNAUTHENTICATED/);
    expect(r.output).not.toMatch(/KMS_TOKEN/);
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
    // docs/keys.md shows `kms reencrypt stop`: on a finished job it changes nothing.
    const stop = await kms(["reencrypt", "stop", "--json", ...addr()], { KMS_TOKEN: token });
    expect(stop.code, stop.output).toBe(0);
    expect(JSON.parse(stop.stdout)).toMatchObject({ state: "finished" });
  }, 60_000);
});

describe("kms command lines it would misread", () => {
  it("When an option is given twice, anything follows --, or an argument is extra, Then exit 2 saying what to do", async () => {
    for (const [args, message] of [
      [["--addr", "127.0.0.1:1", ...addr()], /--addr given more than once: give it once/],
      [["--json", "--json", ...addr()], /--json given more than once/],
      [["--timeout", "1s", "--timeout=2s", ...addr()], /--timeout given more than once/],
      [["--token-file", tokenFile, "--tokenFile", tokenFile, ...addr()], /--token-file given/],
      [["--tls", "--no-tls", ...addr()], /--tls given more than once/],
      [[...addr(), "extra"], /too many arguments for 'status'.*: extra.*see kms --help/],
      [[...addr(), "--", "extra"], /too many arguments for 'status'.*: extra.*see kms --help/],
    ] as const) {
      const r = await kms(["reencrypt", "status", ...args], { KMS_TOKEN: token });
      expect(r.code, r.output).toBe(2);
      expect(r.output).toMatch(message);
      expect(r.stdout).not.toMatch(/state/); // no call was made
    }
  });
});

describe("kms --token-file", () => {
  const file = (name: string, content: string) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  };

  it("When the file ends with one line ending (LF or CRLF), Then the token is the rest", async () => {
    for (const content of [token, `${token}\n`, `${token}\r\n`]) {
      const r = await kms(["reencrypt", "status", "--token-file", file("ok", content), ...addr()]);
      expect(r.code, r.output).toBe(0);
    }
  });

  it("When the file is empty or holds more than the token, Then exit 2 naming the file, and nothing is sent", async () => {
    for (const [name, content, message] of [
      ["empty", "", /is empty/],
      ["newline", "\n", /is empty/],
      ["two-lines", `${token}\n\n`, /must hold the token alone/],
      ["spaces", ` ${token}\n`, /must hold the token alone/],
    ] as const) {
      const path = file(name, content);
      const r = await kms(["reencrypt", "status", "--token-file", path, ...addr()]);
      expect(r.code, r.output).toBe(2);
      expect(r.output).toContain(`--token-file: ${path}`);
      expect(r.output).toMatch(message);
      expect(r.output).not.toContain(token);
    }
  });
});

describe("kms index-key", () => {
  it("refuses a careless command line with exit 2, naming the problem", async () => {
    for (const [args, message] of [
      [["index-key", "rotate", "--batch-size", "0"], /--batch-size: expected an integer from 1/],
      [["index-key", "rotate", "--pause", "2h"], /--pause: expected a duration/],
      [["index-key", "drop"], /unknown command 'drop'.*see kms --help/],
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
