import { execFile, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect as http2Connect, constants } from "node:http2";
import { connect as netConnect } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { toBinary, create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { NODE_MAJOR } from "../../internal/pkg/cli/node_version.js";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { GetUserRequestSchema, UserService } from "../../api/user/v1/user_pb.js";
import { grpcDefinition } from "../helpers/grpc_definition.js";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
} from "../../third_party/grpc/health/v1/health_pb.js";
import { grpcClient } from "../helpers/clients.js";
import { testRootKey } from "../helpers/app.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import {
  copyCheckout,
  processesWith,
  runMigrate,
  spawnNpmStart,
  spawnServer,
} from "../helpers/process.js";

const repoRoot = resolve(import.meta.dirname, "../..");

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(join(tmpdir(), "kbts-proc-"));
});

afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, body);
  return path;
}

const baseConfig = (source: string) => `
server:
  grpc: { addr: "127.0.0.1:0" }
  http: { addr: "127.0.0.1:0" }
  shutdown_timeout: 20s
data:
  database: { source: "${source}", migrate: "up" }
kms:
  root_key: "${testRootKey}"
auth: { enabled: false }
log: { level: info, format: json }
`;

const noDbEnv = { DATABASE_URL: undefined, KMS_ROOT_KEY: undefined, KMS_ROOT_KEY_FILE: undefined };

// The machine's own Node, as a user without npm would run a program with it.
const SYSTEM_NODE = "/usr/bin/node";
const systemMajor = Number(
  spawnSync(SYSTEM_NODE, ["-p", "process.versions.node"], { encoding: "utf8" }).stdout?.split(
    ".",
  )[0],
);

describe("start-up", () => {
  it.runIf(systemMajor < NODE_MAJOR)(
    `on the machine's older Node, each program refuses with one line naming Node ${NODE_MAJOR} and a command that runs it on the project's Node, exit code 2`,
    async () => {
      const built = dirname(dirname(inject("migrateScript")));
      for (const name of ["migrate", "kms", "server"]) {
        const script = join(built, name, "main.js");
        const run = spawnSync(SYSTEM_NODE, [script, "--help"], { cwd: repoRoot, encoding: "utf8" });
        expect(run.status, run.stderr).toBe(2);
        expect(run.stdout).toBe("");
        const lines = run.stderr.trim().split("\n");
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(
          new RegExp(`^${name}: needs Node ${NODE_MAJOR} or newer, this is Node ${systemMajor}\\.`),
        );
        // The command it names works where `node` is the older one: npx runs
        // the Node that npm install brought.
        const command = /run it on the Node that npm install brings: (.*)$/.exec(lines[0]!)![1]!;
        expect(command).toBe(`npx node ${script.slice(repoRoot.length + 1)} --help`);
        const { stdout } = await promisify(execFile)("/bin/sh", ["-c", command], {
          cwd: repoRoot,
          env: { ...process.env, PATH: dirname(SYSTEM_NODE) + ":/bin" },
        });
        expect(stdout).toMatch(new RegExp(`^Usage: ${name} `));
      }
    },
  );

  it("refuses a bad config with one line naming the field, exit code 2", async () => {
    const conf = writeConfig(
      "bad.yaml",
      baseConfig(db.url).replace('migrate: "up"', 'migrate: "sideways"'),
    );
    const server = spawnServer(["-conf", conf], { env: noDbEnv });
    expect(await server.exited).toBe(2);
    const lines = server.output().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("data.database.migrate");
  });

  it("refuses a command line it would misread with one line naming the bad input, exit code 2", async () => {
    const conf = writeConfig("usage.yaml", baseConfig(db.url));
    for (const [args, message] of [
      [["--bogus"], /^server: unknown option '--bogus'$/],
      [["-conf", conf, "extra"], /^server: too many arguments.*: extra$/],
      [["-conf", conf, "--conf", conf], /^server: --conf given more than once: give it once$/],
    ] as const) {
      const server = spawnServer([...args], { env: noDbEnv });
      expect(await server.exited, server.output()).toBe(2);
      expect(server.output().trim()).toMatch(message);
    }
  });

  it("refuses an unknown key, naming where it is", async () => {
    const conf = writeConfig(
      "unknown.yaml",
      baseConfig(db.url).replace(
        "shutdown_timeout: 20s",
        "shutdown_timeout: 20s\n  shutdown_timeuot: 1s",
      ),
    );
    const server = spawnServer(["-conf", conf], { env: noDbEnv });
    expect(await server.exited).toBe(2);
    expect(server.output().trim()).toMatch(/^config .*: server\.shutdown_timeuot: unknown field/);
  });

  it("names an unreachable database without its password, exit code 1", async () => {
    const conf = writeConfig(
      "unreachable.yaml",
      baseConfig("postgres://app:s3cr3t-pw@127.0.0.1:1/nowhere"),
    );
    const server = spawnServer(["-conf", conf], { env: noDbEnv });
    expect(await server.exited).toBe(1);
    expect(server.output()).toContain("127.0.0.1:1/nowhere");
    expect(server.output()).not.toContain("s3cr3t-pw");
  });

  it("starts the embedded PostgreSQL under .data/ when no database is configured, and stops it on SIGTERM", async () => {
    const work = mkdtempSync(join(tmpdir(), "kbts-embedded-"));
    chmodSync(work, 0o755); // as root, PostgreSQL (user postgres) must enter it
    try {
      const conf = writeConfig("embedded.yaml", baseConfig(""));
      const server = spawnServer(["-conf", conf], { cwd: work, env: noDbEnv });
      const line = await server.waitFor(/"msg":"using embedded PostgreSQL"/);
      expect(JSON.parse(line).dataDir).toBe(join(work, ".data", "postgres"));
      await server.waitFor(/"msg":"listening/);
      expect(existsSync(join(work, ".data", "postgres", "postmaster.pid"))).toBe(true);
      // `migrate --embedded` reaches the running cluster, and leaves it running.
      const status = await runMigrate(["status", "--embedded"], { cwd: work, env: noDbEnv });
      expect(status.code, status.output).toBe(0);
      expect(status.stdout).toMatch(/^applied .* 000001_init_schema$/m);
      expect(status.output).toMatch(/embedded PostgreSQL already running; using it/);
      expect(existsSync(join(work, ".data", "postgres", "postmaster.pid"))).toBe(true);
      server.child.kill("SIGTERM");
      expect(await server.exited).toBe(0);
      expect(existsSync(join(work, ".data", "postgres", "postmaster.pid"))).toBe(false);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe("a start after a hard stop", () => {
  it("stops the embedded PostgreSQL a SIGKILLed server left behind, and refuses one a running server uses", async () => {
    const work = mkdtempSync(join(tmpdir(), "kbts-leftover-"));
    chmodSync(work, 0o755); // as root, PostgreSQL (user postgres) must enter it
    const pidFile = join(work, ".data", "postgres", "postmaster.pid");
    const conf = writeConfig("leftover.yaml", baseConfig(""));
    try {
      const first = spawnServer(["-conf", conf], { cwd: work, env: noDbEnv });
      await first.waitFor(/"msg":"listening/);
      // A second server here while the first runs: refused, the first unharmed.
      const second = spawnServer(["-conf", conf], { cwd: work, env: noDbEnv });
      expect(await second.exited).toBe(1);
      expect(second.output()).toMatch(/is in use by process \d+ \(another server started here\?\)/);
      first.child.kill("SIGKILL");
      await first.exited;
      const orphan = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
      expect(processesWith(join(work, ".data"))).toContain(String(orphan));

      const again = spawnServer(["-conf", conf], { cwd: work, env: noDbEnv });
      await again.waitFor(/stopping the embedded PostgreSQL an earlier run left behind/);
      await again.waitFor(/"msg":"listening/);
      expect(processesWith(join(work, ".data"))).not.toContain(String(orphan));
      again.child.kill("SIGTERM");
      expect(await again.exited).toBe(0);
      expect(existsSync(pidFile)).toBe(false);
    } finally {
      for (const pid of processesWith(join(work, ".data"))) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
      rmSync(work, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("first start, anywhere", () => {
  // The checkout itself (node_modules and its PostgreSQL binaries included)
  // sits in the private directory, as after `git clone` into /root or a
  // `mktemp -d`: the README's `npm install && npm start`, nothing else.
  it.runIf(process.getuid?.() === 0)(
    "as root, a checkout in a private (0700) directory starts with npm start, says where the cluster went, and SIGTERM leaves nothing running",
    async () => {
      const work = mkdtempSync(join(tmpdir(), "kbts-private-"));
      chmodSync(work, 0o700);
      const app = join(work, "app");
      let cluster: string | undefined;
      try {
        copyCheckout(app);
        const npm = spawnNpmStart(app, [], {
          ...noDbEnv,
          GRPC_ADDR: "127.0.0.1:0",
          HTTP_ADDR: "127.0.0.1:0",
          APP_ENV: undefined,
        });
        const line = await npm.waitFor(/keeping the cluster in/);
        cluster = JSON.parse(line).cluster as string;
        expect(cluster.startsWith("/var/lib/kratos-boilerplate-ts/")).toBe(true);
        const binaries = JSON.parse(await npm.waitFor(/running the PostgreSQL binaries from/))
          .binaries as string;
        expect(binaries.startsWith("/var/lib/kratos-boilerplate-ts/bin/")).toBe(true);
        await npm.waitFor(/"msg":"ready"/);
        expect(existsSync(join(app, ".data"))).toBe(false);
        const postmasters = processesWith(cluster);
        expect(postmasters.length).toBeGreaterThan(0);
        for (const pid of postmasters) {
          expect(readlinkSync(`/proc/${pid}/exe`).startsWith(binaries)).toBe(true);
        }
        // migrate --embedded from the same directory reaches the same cluster.
        const status = await runMigrate(["status", "--embedded"], { cwd: app, env: noDbEnv });
        expect(status.code, status.output).toBe(0);
        expect(status.output).toMatch(/already running; using it/);
        npm.child.kill("SIGTERM");
        expect(await npm.exited).toBe(0);
        expect(npm.output()).toMatch(/"msg":"stopped"/);
        expect(existsSync(join(cluster, "postgres", "postmaster.pid"))).toBe(false);
        expect(processesWith(app)).toEqual([]);
        expect(processesWith(cluster)).toEqual([]);
      } finally {
        for (const pid of [...processesWith(app), ...(cluster ? processesWith(cluster) : [])]) {
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {
            // gone meanwhile
          }
        }
        rmSync(work, { recursive: true, force: true });
        if (cluster) rmSync(cluster, { recursive: true, force: true });
      }
    },
    240_000,
  );

  it("npm start -- -conf FILE with GRPC_ADDR/HTTP_ADDR, then SIGTERM to npm, leaves no process behind", async () => {
    const conf = writeConfig(
      "npm-start.yaml",
      baseConfig(db.url).replace(/addr: "127\.0\.0\.1:0"/g, 'addr: "0.0.0.0:9"'),
    );
    // npm itself, as `docker stop` or systemd would signal it (prestart builds first).
    const npm = spawnNpmStart(repoRoot, ["-conf", conf], {
      ...noDbEnv,
      GRPC_ADDR: "127.0.0.1:0",
      HTTP_ADDR: "127.0.0.1:0",
    });
    const listening = JSON.parse(await npm.waitFor(/"msg":"listening/));
    expect(listening.grpc).not.toBe(9);
    expect(listening.http).not.toBe(9);
    // npm start runs the server on the Node package.json pins, whatever the machine's `node`.
    const metrics = await (await fetch(`http://127.0.0.1:${listening.http}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^nodejs_version_info\\{version="v${NODE_MAJOR}\\.`, "m"));
    // The server runs with the Node flags package.json declares (config.node_flags).
    // and the malloc setting it exports (config.malloc_mmap_threshold).
    const pid = processesWith(conf).find((p) =>
      readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").includes("dist/cmd/server/main.js"),
    );
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    expect(argv).toContain("--max-semi-space-size=64");
    expect(argv).toContain("--expose-gc");
    const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
    expect(environ).toContain("MALLOC_MMAP_THRESHOLD_=32768");
    npm.child.kill("SIGTERM");
    expect(await npm.exited).toBe(0);
    // The server (found by its config path on the command line) is gone too.
    const left = processesWith(conf);
    for (const pid of left) process.kill(Number(pid), "SIGKILL");
    expect(left).toEqual([]);
    expect(npm.output()).toMatch(/"msg":"stopped"/);
  }, 180_000);
});

describe("log.request_sample", () => {
  it("at 0 logs no successful call and every failed one, while the metrics count them all", async () => {
    const conf = writeConfig(
      "sample.yaml",
      baseConfig(db.url).replace("format: json }", "format: json, request_sample: 0 }"),
    );
    const server = spawnServer(["-conf", conf], { env: noDbEnv });
    const listening = JSON.parse(await server.waitFor(/"msg":"listening/)) as Record<
      string,
      number
    >;
    const kms = grpcClient(KmsService, listening.grpc!);
    const users = grpcClient(UserService, listening.grpc!);
    for (let i = 0; i < 20; i++)
      await kms.unary(KmsService.method.hashField, { fieldName: "email", value: "a@b.c" });
    for (let i = 0; i < 3; i++)
      await users.unary(UserService.method.getUser, { id: 424242n }).catch(() => undefined);
    kms.close();
    users.close();
    const metrics = await (await fetch(`http://127.0.0.1:${listening.http}/metrics`)).text();
    const closed = new Promise((resolve) => server.child.once("close", resolve));
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    await closed;
    const count = (method: string, code: string) =>
      new RegExp(
        `rpc_server_duration_seconds_count\\{[^}]*method="${method}"[^}]*code="${code}"[^}]*\\} (\\d+)`,
      ).exec(metrics)?.[1];
    expect([count("HashField", "OK"), count("GetUser", "NOT_FOUND")]).toEqual(["20", "3"]);
    const calls = server
      .output()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === "rpc");
    expect(calls.map((l) => [l.rpc, l.code])).toEqual(
      Array.from({ length: 3 }, () => ["user.v1.UserService/GetUser", "NOT_FOUND"]),
    );
  });
});

describe("SIGTERM", () => {
  it("an idle connection on each port and an open Health/Watch stream do not hold it: exit 0, drained", async () => {
    const conf = writeConfig("idle.yaml", baseConfig(db.url));
    const server = spawnServer(["-conf", conf], { env: noDbEnv });
    const listening = JSON.parse(await server.waitFor(/"msg":"listening/)) as Record<
      string,
      number
    >;
    const idle = [listening.grpc!, listening.http!].map((port) => netConnect(port, "127.0.0.1"));
    await Promise.all(idle.map((s) => new Promise((r) => s.once("connect", r))));
    for (const s of idle) s.on("error", () => undefined);
    const Ctor = grpc.makeGenericClientConstructor(grpcDefinition(Health), "Health");
    const client = new Ctor(`127.0.0.1:${listening.grpc}`, grpc.credentials.createInsecure());
    const watch = (
      client as unknown as Record<string, (req: unknown) => grpc.ClientReadableStream<unknown>>
    )[Health.method.watch.localName]!.call(
      client,
      create(HealthCheckRequestSchema, { service: "" }),
    );
    const statuses: number[] = [];
    watch.on("data", (r: { status: number }) => statuses.push(r.status));
    watch.on("error", () => undefined);
    const closed = new Promise((r) => watch.on("close", r));
    while (statuses.length === 0) await new Promise((r) => setTimeout(r, 20));
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(server.output()).toMatch(/"drained":true/);
    await closed;
    // Draining and shutting down both say NOT_SERVING; a watcher hears it once.
    expect(statuses).toEqual([
      HealthCheckResponse_ServingStatus.SERVING,
      HealthCheckResponse_ServingStatus.NOT_SERVING,
    ]);
    client.close();
    for (const s of idle) s.destroy();
  });

  it("with drain_delay, answers unready while still accepting, then stops", async () => {
    const conf = writeConfig(
      "drain.yaml",
      baseConfig(db.url).replace(
        "shutdown_timeout: 20s",
        "shutdown_timeout: 20s\n  drain_delay: 3s",
      ),
    );
    const server = spawnServer(["-conf", conf], { env: noDbEnv });
    const listening = JSON.parse(await server.waitFor(/"msg":"listening/)) as Record<
      string,
      number
    >;
    server.child.kill("SIGTERM");
    await server.waitFor(/draining: not ready, still accepting/);
    const ready = await fetch(`http://127.0.0.1:${listening.http}/readyz`);
    expect(ready.status).toBe(503);
    const health = grpcClient(Health, listening.grpc!);
    try {
      expect((await health.unary(Health.method.check, { service: "" })).status).toBe(
        HealthCheckResponse_ServingStatus.NOT_SERVING,
      );
    } finally {
      health.close();
    }
    expect(await server.exited).toBe(0);
  });

  it("during start-up stops the service (its migrations at once, else as soon as it is up), exit 0", async () => {
    const conf = writeConfig("early.yaml", baseConfig(db.url));
    const server = spawnServer(["-conf", conf], { env: noDbEnv });
    await server.waitFor(/"msg":"using external PostgreSQL"/);
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    // Where the signal lands decides which; both are a stop, nothing half-way.
    await expect
      .poll(() => server.output())
      .toMatch(
        /"msg":"stopped"|"message":"migrate: interrupted by SIGTERM .*"msg":"start-up stopped"/,
      );
    expect(server.output()).not.toMatch(/"level":"fatal"/);
  });

  it("cuts a call still running at shutdown_timeout, says so, and exits 0", async () => {
    const conf = writeConfig(
      "cut.yaml",
      baseConfig(db.url).replace("shutdown_timeout: 20s", "shutdown_timeout: 1s"),
    );
    const server = spawnServer(["-conf", conf], { env: noDbEnv });
    const listening = JSON.parse(await server.waitFor(/"msg":"listening/)) as Record<
      string,
      number
    >;
    const session = http2Connect(`http://127.0.0.1:${listening.grpc}`);
    session.on("error", () => undefined);
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: "POST",
      [constants.HTTP2_HEADER_PATH]: "/user.v1.UserService/GetUser",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => undefined);
    await new Promise((resolve) => stream.once("ready", resolve));
    // Half a message, never finished: the call cannot complete.
    stream.write(Buffer.from([0, 0, 0]));
    await new Promise((resolve) => session.ping(resolve));
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    expect(server.output()).toMatch(/"drained":false/);
    session.destroy();
  });

  // A call whose request is still arriving when SIGTERM lands is in flight:
  // the server must stop accepting new work yet finish this call.
  it.each([
    { port: "grpc", contentType: "application/grpc", framed: true },
    { port: "http", contentType: "application/proto", framed: false },
  ])(
    "drains an in-flight call on the $port port, then exits 0",
    async ({ port, contentType, framed }) => {
      const conf = writeConfig(`drain-${port}.yaml`, baseConfig(db.url));
      const server = spawnServer(["-conf", conf], { env: noDbEnv });
      const listening = JSON.parse(await server.waitFor(/"msg":"listening/)) as Record<
        string,
        number
      >;
      const session = http2Connect(`http://127.0.0.1:${listening[port]}`);
      const message = toBinary(GetUserRequestSchema, create(GetUserRequestSchema, { id: 42n }));
      const body = framed
        ? Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message])
        : Buffer.from(message);
      const stream = session.request({
        [constants.HTTP2_HEADER_METHOD]: "POST",
        [constants.HTTP2_HEADER_PATH]: "/user.v1.UserService/GetUser",
        "content-type": contentType,
        te: "trailers",
      });
      const answer = new Promise<Record<string, unknown>>((resolve) => {
        let headers: Record<string, unknown> = {};
        stream.on("response", (h) => (headers = { ...h }));
        stream.on("trailers", (t) => (headers = { ...headers, ...t }));
        stream.on("end", () => resolve(headers));
        stream.resume();
      });
      await new Promise((resolve) => stream.once("ready", resolve));
      stream.write(body.subarray(0, 3));
      // A PING is answered after every frame sent before it was read: once it
      // is acknowledged, the server holds the call.
      await new Promise((resolve) => session.ping(resolve));
      server.child.kill("SIGTERM");
      await server.waitFor(/shutting down/);
      stream.end(body.subarray(3));
      const headers = await answer;
      session.close();
      // A real answer from the database: there is no user 42.
      if (port === "grpc") expect(headers["grpc-status"]).toBe("5");
      else expect(headers[":status"]).toBe(404);
      expect(await server.exited).toBe(0);
      expect(server.output()).toMatch(/"drained":true/);
    },
  );

  it("loses no request log line: every call answered, those finished while draining too, is in the output, whole", async () => {
    const conf = writeConfig("log-flush.yaml", baseConfig(db.url));
    const server = spawnServer(["-conf", conf], { env: noDbEnv });
    const listening = JSON.parse(await server.waitFor(/"msg":"listening/)) as Record<
      string,
      number
    >;
    const closed = new Promise((resolve) => server.child.once("close", resolve));
    // Its stdout unread, the pipe fills: lines wait in the logger's buffer,
    // as behind a slow log collector.
    server.child.stdout.pause();
    const kms = grpcClient(KmsService, listening.grpc!);
    let answered = 0;
    let stopped = false;
    // 32 callers, each calling again as soon as answered, until the server is gone.
    const load = Array.from({ length: 32 }, async () => {
      while (!stopped) {
        try {
          await kms.unary(KmsService.method.hashField, { fieldName: "email", value: "a@b.c" });
          answered++;
        } catch {
          return;
        }
      }
    });
    while (answered < 1000) await new Promise((r) => setTimeout(r, 10));
    server.child.kill("SIGTERM");
    // The server drains and stops with lines still buffered; then its
    // output is read again.
    await new Promise((r) => setTimeout(r, 1000));
    server.child.stdout.resume();
    expect(await server.exited).toBe(0);
    await closed;
    stopped = true;
    await Promise.all(load);
    kms.close();
    const lines = server
      .output()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const logged = lines.filter(
      (l) => l.msg === "rpc" && l.rpc === "kms.v1.KmsService/HashField" && l.code === "OK",
    );
    expect(logged.length).toBeGreaterThanOrEqual(answered);
    expect(lines.at(-1)).toMatchObject({ msg: "stopped", drained: true });
  });
});
