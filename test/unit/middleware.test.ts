import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { GetUserRequestSchema, UserService } from "../../api/user/v1/user_pb.js";
import { parseConfig } from "../../internal/conf/load.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { bind, type ServiceImpl } from "../../internal/transport/binding.js";
import { commitGateKey, createCall, type Call } from "../../internal/transport/call.js";
import { callerKey } from "../../internal/transport/caller.js";
import { createAuthenticator } from "../../internal/server/auth/authenticator.js";
import { buildRoutes } from "../../internal/server/handlers.js";
import { createMetrics } from "../../internal/server/metrics.js";
import { middlewareChain } from "../../internal/server/middleware/index.js";
import { rejection } from "../helpers/errors.js";

function setup(impl: ServiceImpl<typeof UserService>) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()));
      cb();
    },
  });
  const log = createLogger({ level: "info", format: "json", destination: sink });
  const conf = parseConfig(
    { kms: { root_key: Buffer.alloc(32).toString("base64") }, auth: { enabled: false } },
    "t",
  );
  const metrics = createMetrics();
  const routes = buildRoutes(
    [bind(UserService, impl)],
    middlewareChain({
      server: conf.server!,
      limits: conf.limits!,
      log,
      rpc: metrics.rpc,
      authenticator: createAuthenticator(conf.auth),
    }),
  );
  const route = routes.find((r) => r.method === UserService.method.getUser)!;
  const call = (id: bigint, deadline?: number) =>
    createCall({
      service: UserService,
      method: UserService.method.getUser,
      request: create(GetUserRequestSchema, { id }),
      deadline,
      transport: "connect",
      requestHeader: new Headers(),
    });
  return {
    lines,
    metrics,
    call,
    run: (id: bigint, deadline?: number) => route.handler(call(id, deadline)),
    runCall: (c: ReturnType<typeof call>) => route.handler(c),
  };
}

describe("the middleware chain", () => {
  it("passes a valid request to the handler and logs one line without the payload", async () => {
    const { run, lines } = setup({
      getUser: async (req) => ({ user: { id: req.id, email: "ann@example.com" } }),
    });
    const res = await run(7n);
    expect(res).toMatchObject({ user: { id: 7n } });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      rpc: "user.v1.UserService/GetUser",
      transport: "connect",
      code: "OK",
    });
    expect(JSON.stringify(lines)).not.toContain("ann@example.com");
  });

  it("answers UNIMPLEMENTED, reason NOT_IMPLEMENTED, for a method without an implementation", async () => {
    const { run } = setup({});
    const err = await rejection(run(1n));
    expect(err.code).toBe(Code.Unimplemented);
    expect(err).toMatchObject({
      reason: "NOT_IMPLEMENTED",
      domain: "user.v1",
    });
  });

  it("stops an invalid request before the handler", async () => {
    let called = false;
    const { run } = setup({ getUser: async () => ((called = true), {}) });
    const err = await rejection(run(0n));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(called).toBe(false);
  });

  it("hides an unexpected fault from the client and logs its cause once", async () => {
    const { run, lines } = setup({
      getUser: async () => {
        throw Object.assign(new Error("relation users is locked"), {
          detail: "Key (email)=(ann@example.com)",
        });
      },
    });
    const err = await rejection(run(1n));
    expect(err.code).toBe(Code.Internal);
    expect(err.message).toBe("internal error");
    expect(err.reason).toBe("INTERNAL");
    const faults = lines.filter((l) => l.msg === "unexpected fault in handler");
    expect(faults).toHaveLength(1);
    expect(JSON.stringify(faults)).toContain("relation users is locked");
    expect(JSON.stringify(lines)).not.toContain("ann@example.com");
  });

  it("answers DEADLINE_EXCEEDED when the client's deadline passes, without waiting for the handler, and refuses a commit after it", async () => {
    let commit: (() => void) | undefined;
    const { run, metrics } = setup({
      getUser: (_req, call) => {
        commit = () => call.beginCommit();
        // A handler that never answers.
        return new Promise(() => undefined);
      },
    });
    const err = await rejection(run(1n, Date.now() + 20));
    expect(err.code).toBe(Code.DeadlineExceeded);
    expect(err.reason).toBe("DEADLINE_EXCEEDED");
    // The handler's write, late, is refused before it commits: nothing written.
    expect(commit).toBeDefined();
    expect(() => commit!()).toThrow(/deadline/i);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(
      /rpc_server_duration_seconds_count\{[^}]*code="DEADLINE_EXCEEDED"[^}]*\} 1/,
    );
  });

  it("leaves the transport's call as it was: the caller and the commit gate reach the handler on a copy", async () => {
    let seen: Call | undefined;
    const { call, runCall } = setup({
      getUser: async (req, c) => ((seen = c), { user: { id: req.id } }),
    });
    const sent = call(3n, Date.now() + 60_000);
    await runCall(sent);
    expect(sent.caller).toBeUndefined();
    expect(sent.values.get(commitGateKey)).toBe(commitGateKey.defaultValue);
    expect(seen).not.toBe(sent);
    expect(seen!.caller).toMatchObject({ name: "anonymous" });
    expect(seen!.values.get(callerKey)).toBe(seen!.caller);
    expect(seen!.values.get(commitGateKey)).not.toBe(commitGateKey.defaultValue);
    expect(seen!.request).toBe(sent.request);
    // Read-only through its type, and the caller has no setter at all.
    // @ts-expect-error: Call.caller is readonly
    expect(() => (sent.caller = seen!.caller)).toThrow(TypeError);
  });
});
