import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, describe, expect, it, type TestContext } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import { startTestApp, useTestApp } from "../helpers/app.js";
import { grpcClient } from "../helpers/clients.js";
import { spawnProcess } from "../helpers/process.js";

// The client examples of examples/, each built and run as its README says,
// as its own process, against a live server with authentication on: Go and
// Python on the gRPC port, TypeScript on Node.js and a web page in Chromium on
// the HTTP port. What each prints is checked step by step, and against the
// server. Go, Python and the page need Debian's packages: .ci/run installs
// them; on a machine without them that test is skipped and says which.

const root = resolve(import.meta.dirname, "../..");
const dir = (name: string) => join(root, "examples", name);

const digest = (token: string) => createHash("sha256").update(token).digest("hex");
// The scopes the scenario needs, and the same without pii.read: with that
// one full reads come back masked, a surprise each example must exit 1 on.
const token = randomBytes(24).toString("base64url");
const tokenWithoutPii = randomBytes(24).toString("base64url");

const ctx = useTestApp({
  config: {
    server: {
      grpc: { addr: "127.0.0.1:0" },
      http: { addr: "127.0.0.1:0", cors_allowed_origins: ["http://127.0.0.1:*"] },
    },
    auth: {
      enabled: true,
      tokens: [
        {
          name: "examples",
          sha256: digest(token),
          scopes: ["users.read", "users.write", "pii.read", "kms.admin"],
        },
        {
          name: "examples-no-pii",
          sha256: digest(tokenWithoutPii),
          scopes: ["users.read", "users.write", "kms.admin"],
        },
      ],
    },
  },
});

/** "" when Debian's `packages` are installed here, else what to install. */
function missing(...packages: string[]): string {
  const installed = spawnSync("dpkg", ["-s", ...packages], { stdio: "ignore" }).status === 0;
  return installed ? "" : `needs Debian's ${packages.join(", ")}`;
}

// As .ci/run installs them. golang-github-golang-protobuf-1-5-dev, not the
// 1-3 that golang-google-grpc-dev would also take: the stubs need APIv2.
const goMissing = missing(
  "golang-go",
  "golang-google-grpc-dev",
  "golang-google-genproto-dev",
  "golang-google-protobuf-dev",
  "golang-github-golang-protobuf-1-5-dev",
  "protoc-gen-go",
  "protoc-gen-go-grpc",
);
const pythonMissing = missing(
  "python3-grpcio",
  "python3-protobuf",
  "protobuf-compiler",
  "protobuf-compiler-grpc",
);
const curlMissing = missing("curl", "jq");
const CHROMIUM = "/usr/bin/chromium";
const chromiumMissing = existsSync(CHROMIUM) ? "" : "needs Debian's chromium";

/** Skips the test, saying why, when its toolchain is missing here; under CI, which installs it, fails. */
function requireToolchain(t: TestContext, why: string): void {
  if (!why) return;
  if (process.env.CI) throw new Error(`${why}, which .ci/run installs`);
  console.warn(`examples.test.ts: ${t.task.name}: skipped, ${why}`);
  t.skip(why);
}

/** Runs a command to its end (stdin closed); its exit code and everything it printed. */
async function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const proc = spawnProcess(command, args, { cwd, env });
  proc.child.stdin.end();
  const code = await proc.exited;
  return { code, output: proc.output() };
}

const grpcEnv = (t: string) => ({ API_ADDR: `127.0.0.1:${ctx.app.grpcPort}`, API_TOKEN: t });
const httpEnv = (t: string) => ({ API_URL: `http://127.0.0.1:${ctx.app.httpPort}`, API_TOKEN: t });

/**
 * The scenario as every example prints it, step by step: the user it made,
 * found by email, masked then in full, a rotated key, the refusal handled by
 * its reason; and the server (on `grpcPort`) agrees on the user and the active key.
 */
async function expectScenario(
  output: string,
  prefix: string,
  grpcPort = ctx.app.grpcPort,
): Promise<void> {
  const created = /^created user (\d+) (\S+)$/m.exec(output);
  expect(created, output).not.toBeNull();
  const [, id, username] = created!;
  expect(username).toMatch(new RegExp(`^${prefix}_[0-9a-f]{8}$`));
  expect(output).toMatch(new RegExp(`^found by email: user ${id}$`, "m"));
  // Masked keeps the first letter of each; full is what was created.
  expect(output).toMatch(
    new RegExp(`^masked: email ${prefix[0]}\\*\\*\\*@example\\.com, name A\\*\\*\\*$`, "m"),
  );
  expect(output).toMatch(
    new RegExp(`^full: email ${username}@example\\.com, name Ada Lovelace$`, "m"),
  );
  const rotated = /^rotated the data key: version (\d+) \(was (\d+)\)$/m.exec(output);
  expect(rotated, output).not.toBeNull();
  expect(Number(rotated![1])).toBeGreaterThan(Number(rotated![2]));
  expect(output).toMatch(
    /^the same email again: (ALREADY_EXISTS|AlreadyExists), reason USER_ALREADY_EXISTS \(field email\): handled$/m,
  );

  const users = grpcClient(UserService, grpcPort, token);
  const kms = grpcClient(KmsService, grpcPort, token);
  try {
    const user = await users.unary(UserService.method.getUser, { id: BigInt(id!) });
    expect(user.user?.username).toBe(username);
    const status = await kms.unary(KmsService.method.getStatus, {});
    expect(status.activeKey?.version).toBe(Number(rotated![1]));
  } finally {
    users.close();
    kms.close();
  }
}

/** A surprise (full reads masked, for want of pii.read) ends the example with exit 1, saying so. */
function expectSurprise(r: { code: number | string; output: string }): void {
  expect(r.code, r.output).toBe(1);
  expect(r.output).toMatch(/^error: .*does the token have pii\.read\?$/m);
}

describe("the client examples (examples/)", () => {
  it("Go (grpc-go): built offline from Debian's packages, runs the scenario", async (t) => {
    requireToolchain(t, goMissing);
    // Generated and vendored from Debian by the script, never committed.
    const build = await run("./build-offline.sh", [], dir("go"));
    expect(build.code, build.output).toBe(0);
    const gofmt = await run("gofmt", ["-l", "main.go"], dir("go"));
    expect(gofmt.output, "gofmt -l").toBe("");

    const r = await run("./users", [], dir("go"), grpcEnv(token));
    expect(r.code, r.output).toBe(0);
    await expectScenario(r.output, "go");
    expectSurprise(await run("./users", [], dir("go"), grpcEnv(tokenWithoutPii)));
  }, 600_000);

  it("Python (grpcio): stubs generated from Debian's plugins, runs the scenario", async (t) => {
    requireToolchain(t, pythonMissing);
    const generate = await run("npx", ["buf", "generate"], dir("python"));
    expect(generate.code, generate.output).toBe(0);

    const python = (env: NodeJS.ProcessEnv) =>
      run("/usr/bin/python3", ["users.py"], dir("python"), env);
    const r = await python(grpcEnv(token));
    expect(r.code, r.output).toBe(0);
    await expectScenario(r.output, "py");
    expectSurprise(await python(grpcEnv(tokenWithoutPii)));
  }, 120_000);

  it("TypeScript (connect-node): runs the scenario", async () => {
    const r = await run("npx", ["tsx", "users.ts"], dir("typescript"), httpEnv(token));
    expect(r.code, r.output).toBe(0);
    await expectScenario(r.output, "ts");
    expectSurprise(
      await run("npx", ["tsx", "users.ts"], dir("typescript"), httpEnv(tokenWithoutPii)),
    );
  }, 120_000);

  it("TypeScript (connect-node): without API_TOKEN, against the development config's authentication off", async () => {
    // Another instance on the same database, configured as testConfig has it: no auth.
    const open = await startTestApp(ctx.db.url);
    try {
      const env = { API_URL: `http://127.0.0.1:${open.httpPort}`, API_TOKEN: undefined };
      const r = await run("npx", ["tsx", "users.ts"], dir("typescript"), env);
      expect(r.code, r.output).toBe(0);
      expect(r.output).toMatch(/^API_TOKEN is not set: calling without a token$/m);
      await expectScenario(r.output, "ts", open.grpcPort);
    } finally {
      await open.stop();
    }
  }, 120_000);

  it("curl (REST): the script runs the scenario over the google.api.http routes", async (t) => {
    requireToolchain(t, curlMissing);
    const r = await run("./users.sh", [], dir("curl"), httpEnv(token));
    expect(r.code, r.output).toBe(0);
    await expectScenario(r.output, "curl");
    expectSurprise(await run("./users.sh", [], dir("curl"), httpEnv(tokenWithoutPii)));
  }, 120_000);

  let browser: Browser | undefined;
  afterAll(() => browser?.close());

  it("TypeScript (connect-web): the page, served by esbuild, runs the scenario in Chromium", async (t) => {
    requireToolchain(t, chromiumMissing);
    const port = await freePort();
    // The README's command, on a free port; it serves until its stdin closes.
    const serve = spawnProcess(
      "npx",
      [
        "esbuild",
        "web/page.ts",
        "--bundle",
        "--format=esm",
        "--outdir=web",
        "--servedir=web",
        `--serve=127.0.0.1:${port}`,
      ],
      { cwd: dir("typescript") },
    );
    try {
      await serve.waitFor(/Local:\s+http:\/\/127\.0\.0\.1:/);
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });

      /** Fills the form as a person would, runs it, and reads what the page printed. */
      const runPage = async (withToken: string) => {
        const tab = await browser!.newPage();
        await tab.goto(`http://127.0.0.1:${port}/`);
        await tab.fill('input[name="url"]', `http://127.0.0.1:${ctx.app.httpPort}`);
        await tab.fill('input[name="token"]', withToken);
        await tab.click("button");
        await tab.waitForSelector("#output[data-result]");
        const result = await tab.getAttribute("#output", "data-result");
        const output = (await tab.textContent("#output")) ?? "";
        await tab.close();
        return { result, output };
      };

      const page = await runPage(token);
      expect(page.result, page.output).toBe("done");
      await expectScenario(page.output, "web");
      const surprise = await runPage(tokenWithoutPii);
      expect(surprise.result).toBe("failed");
      expect(surprise.output).toMatch(/^error: .*does the token have pii\.read\?$/m);
    } finally {
      serve.child.stdin.end();
      await serve.exited;
    }
  }, 120_000);
});

/** A loopback port free right now, for a server that takes its port on the command line. */
function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
    server.on("error", fail);
  });
}
