import { createHash, randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { UserService } from "../../api/user/v1/user_pb.js";
import type { App } from "../../cmd/server/wire.js";
import { redisLoginAttempts } from "../../internal/data/login_attempts.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { useTestApps } from "../helpers/app.js";
import { outcome, type Failure } from "../helpers/errors.js";
import { databaseProxy } from "../helpers/proxy.js";
import { connect, createServer, type Socket } from "node:net";

// Each test starts the service with its own settings, on one database.
const ctx = useTestApps();

const tokenOf = (name: string) => `logins-test-${name}`;
const token = (name: string, scopes: string[]) => ({
  name,
  sha256: createHash("sha256").update(tokenOf(name)).digest("hex"),
  scopes,
});
/** Two callers: a front end that creates users and checks logins, and a second one that checks logins. */
const twoCallers = (extra: Record<string, unknown> = {}) =>
  ctx.start({
    auth: {
      enabled: true,
      max_login_attempts: 3,
      lock_duration: "60s",
      tokens: [token("front", ["users.login", "users.write"]), token("other", ["users.login"])],
    },
    ...extra,
  });

const usersAs = (app: App, name: string) =>
  createClient(
    UserService,
    createGrpcTransport({
      baseUrl: `http://127.0.0.1:${app.grpcPort}`,
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${tokenOf(name)}`);
          return next(req);
        },
      ],
    }),
  );

const fresh = (prefix: string) => `${prefix}_${randomBytes(4).toString("hex")}`;
const password = "passw0rd-long";

describe("fair admission of password hashing", () => {
  it("When one caller floods logins 32 at a time, Then its excess is refused at once and another caller's logins and creates are all served", async () => {
    const app = await twoCallers();
    const flooder = usersAs(app, "other");
    const front = usersAs(app, "front");
    const username = fresh("served");
    await front.createUser({ username, password, email: `${username}@example.com` });

    // 32 workers, each on distinct unknown logins, until the other caller is done.
    let done = false;
    const flood: Failure[] = [];
    const workers = Array.from({ length: 32 }, async () => {
      while (!done) {
        flood.push(
          await outcome(flooder.verifyPassword({ login: fresh("nobody"), password: "wrong-1" })),
        );
      }
    });
    const served: Failure[] = [];
    for (let i = 0; i < 4; i++) {
      served.push(await outcome(front.verifyPassword({ login: username, password })));
      const name = fresh("created");
      served.push(
        await outcome(front.createUser({ username: name, password, email: `${name}@example.com` })),
      );
    }
    done = true;
    await Promise.all(workers);

    expect(served.map((r) => r.code)).toEqual(Array(8).fill(0));
    const refused = flood.filter((r) => r.code === Code.ResourceExhausted);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r).toMatchObject({ reason: "RATE_LIMITED", retryMs: 1000 });
    // The rest were checked (a decoy hash each) and refused as any wrong password.
    expect(flood.filter((r) => r.code !== Code.ResourceExhausted)).toEqual(
      flood
        .filter((r) => r.code !== Code.ResourceExhausted)
        .map(() => expect.objectContaining({ reason: "INVALID_CREDENTIALS" })),
    );
  }, 120_000);

  it("When a caller has limits.password_hashes_per_caller in hand, Then its next hash is refused and another caller's is not", async () => {
    const app = await twoCallers({ limits: { password_hashes_per_caller: 1 } });
    const flooder = usersAs(app, "other");
    const front = usersAs(app, "front");
    // Two at once from one caller: one is checked, one refused; the other caller's is checked.
    const [a, b, c] = await Promise.all([
      outcome(flooder.verifyPassword({ login: fresh("x"), password: "wrong-1" })),
      outcome(flooder.verifyPassword({ login: fresh("y"), password: "wrong-1" })),
      outcome(front.verifyPassword({ login: fresh("z"), password: "wrong-1" })),
    ]);
    expect([a, b].map((r) => r.reason).sort()).toEqual(["INVALID_CREDENTIALS", "RATE_LIMITED"]);
    expect(c).toMatchObject({ reason: "INVALID_CREDENTIALS" });
  });
});

describe("lockout without leaks", () => {
  it("When a username and a login of no account are locked, Then both answer alike, and neither locks the account's email", async () => {
    const app = await twoCallers();
    const front = usersAs(app, "front");
    const username = fresh("owner");
    const email = `${username}@example.com`;
    await front.createUser({ username, password, email });
    const missing = fresh("ghost");
    for (const login of [username, missing])
      for (let i = 0; i < 3; i++)
        expect(await outcome(front.verifyPassword({ login, password: "wrong-1" }))).toMatchObject({
          code: Code.Unauthenticated,
          reason: "INVALID_CREDENTIALS",
        });

    const answer = async (login: string, pw: string) => {
      const { code, reason, message, retryMs } = await outcome(
        front.verifyPassword({ login, password: pw }),
      );
      return { code, reason, message, retryLimit: retryMs !== undefined && retryMs <= 60_000 };
    };
    const lockedOwner = await answer(username, password);
    expect(lockedOwner).toMatchObject({ code: Code.ResourceExhausted, reason: "ACCOUNT_LOCKED" });
    expect(await answer(missing, password)).toEqual(lockedOwner);
    // Other spellings of the same login share its count.
    expect(await answer(` ${username.toUpperCase()} `, password)).toEqual(lockedOwner);
    // The account's email answers as an email of no account: not locked.
    expect(await answer(email, "wrong-1")).toEqual(
      await answer(`${fresh("ghost")}@example.com`, "wrong-1"),
    );
    expect((await outcome(front.verifyPassword({ login: email, password }))).code).toBe(0);
  });

  it("When one caller fails a login until locked, Then the owner logging in through another caller is served", async () => {
    const app = await twoCallers();
    const front = usersAs(app, "front");
    const other = usersAs(app, "other");
    const username = fresh("victim");
    const { user } = await front.createUser({
      username,
      password,
      email: `${username}@example.com`,
    });
    for (let i = 0; i < 3; i++)
      await outcome(other.verifyPassword({ login: username, password: "wrong-1" }));
    expect(await outcome(other.verifyPassword({ login: username, password }))).toMatchObject({
      reason: "ACCOUNT_LOCKED",
    });
    expect((await front.verifyPassword({ login: username, password })).userId).toBe(user!.id);
  });
});

describe("login counts in Redis from the start", () => {
  const policy = { maxAttempts: 2, lockMs: 60_000 };
  const silent = createLogger({ level: "silent", format: "json" });

  it("When Redis answers only after the counter is made, Then the wait ends when it does and the first attempt is counted there", async () => {
    const proxy = await databaseProxy(new URL("redis://127.0.0.1:6379"));
    const direct = new Redis({ host: "127.0.0.1", port: 6379, lazyConnect: true });
    proxy.down();
    const shared = redisLoginAttempts(new URL(proxy.url).host, policy, silent);
    try {
      const connected = shared.connected(60_000);
      proxy.up();
      expect(await connected).toBe(true);
      const key = fresh("first");
      expect(await shared.attempt(key)).toBe(0);
      expect(await direct.get(`kbts:login-attempts:${key}`)).toBe("1");
    } finally {
      await shared.close();
      direct.disconnect();
      await proxy.close();
    }
  });

  it("When Redis never answers, Then the wait ends at its bound and attempts are counted in memory", async () => {
    const shared = redisLoginAttempts("127.0.0.1:1", policy, silent);
    try {
      expect(await shared.connected(200)).toBe(false);
      const key = fresh("memory");
      expect([await shared.attempt(key), await shared.attempt(key)]).toEqual([0, 0]);
      expect(await shared.attempt(key)).toBeGreaterThan(0);
    } finally {
      await shared.close();
    }
  });

  it("When Redis refuses the instance's first connections, Then the instance waits for it and counts its first login there", async () => {
    // Redis as it comes up: the first connections refused (the client
    // retries 0.2, 0.4, 0.6 s apart), the next ones served.
    let connections = 0;
    const sockets = new Set<Socket>();
    const late = createServer((client) => {
      if (connections++ < 3) return client.destroy();
      const upstream = connect(6379, "127.0.0.1");
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("error", () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => late.listen(0, "127.0.0.1", r));
    const redisAt = (port: number) => ({
      auth: { enabled: false, max_login_attempts: 1, lock_duration: "60s" },
      data: {
        database: { source: ctx.db.url, migrate: "up" },
        redis: { addr: `127.0.0.1:${port}` },
      },
    });
    try {
      const b = await ctx.start(redisAt(6379));
      const a = await ctx.start(redisAt((late.address() as { port: number }).port));
      const users = (app: App) =>
        createClient(
          UserService,
          createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` }),
        );
      const login = fresh("early");
      expect(await outcome(users(a).verifyPassword({ login, password: "wrong-1" }))).toMatchObject({
        reason: "INVALID_CREDENTIALS",
      });
      expect(await outcome(users(b).verifyPassword({ login, password: "wrong-1" }))).toMatchObject({
        reason: "ACCOUNT_LOCKED",
      });
      expect(connections).toBeGreaterThan(3);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => late.close(r));
    }
  });
});
