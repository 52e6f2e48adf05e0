import { create, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  GetUserRequestSchema,
  GetUserResponseSchema,
  UserService,
} from "../../api/user/v1/user_pb.js";
import { deadline } from "../../internal/server/middleware/deadline.js";
import { commitGateKey, createCall, type Call } from "../../internal/transport/call.js";
import { callerKey } from "../../internal/transport/caller.js";
import { emptyContextValues } from "../../internal/transport/context_values.js";
import { fakeQueueTimers, queueTimerAlive } from "./fakes/timers.js";

// A deadline (and its queue of calls) per test, under that test's fake clock.
let bounded: ReturnType<typeof deadline>;
beforeEach(() => {
  fakeQueueTimers(true);
  bounded = deadline({ grpc: 1000, connect: 1000, rest: 1000 });
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

const answer = create(GetUserResponseSchema);

function call(clientDeadlineIn?: number): Call {
  return createCall(
    {
      service: UserService,
      method: UserService.method.getUser,
      request: create(GetUserRequestSchema, { id: 1n }),
      deadline: clientDeadlineIn === undefined ? undefined : Date.now() + clientDeadlineIn,
      transport: "grpc",
      requestHeader: new Headers(),
    },
    emptyContextValues.with(callerKey, { name: "ann", scopes: new Set<string>() }),
  );
}

/** A handler that answers when told, and what the chain made of the call. */
function pending() {
  let seen: Call | undefined;
  let settle: ((m: Message) => void) | undefined;
  const handler = bounded((c) => {
    seen = c;
    return new Promise<Message>((resolve) => (settle = resolve));
  });
  return { handler, seen: () => seen!, answer: () => settle!(answer) };
}

// Each outcome as it stands now: "ok", a code, or "pending".
function track(p: Promise<Message>) {
  let state: string = "pending";
  p.then(
    () => (state = "ok"),
    (e: unknown) => (state = e instanceof ConnectError ? Code[e.code] : "other"),
  );
  return () => state;
}

describe("deadline", () => {
  it("When the client's deadline passes first, Then DEADLINE_EXCEEDED at that time, not before, whatever the handler does", async () => {
    const h = pending();
    const state = track(h.handler(call(50)));
    await vi.advanceTimersByTimeAsync(49);
    expect(state()).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    expect(state()).toBe("DeadlineExceeded");
    expect(() => h.seen().beginCommit()).toThrow(/deadline/i);
  });

  it("When the server's timeout is the earlier, Then it bounds the call", async () => {
    const h = pending();
    const state = track(h.handler(call(60_000)));
    await vi.advanceTimersByTimeAsync(999);
    expect(state()).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    expect(state()).toBe("DeadlineExceeded");
  });

  it("When a write began to commit before the deadline, Then the call answers its outcome, late", async () => {
    const h = pending();
    const state = track(h.handler(call(50)));
    h.seen().beginCommit();
    await vi.advanceTimersByTimeAsync(500);
    expect(state()).toBe("pending");
    h.answer();
    await vi.advanceTimersByTimeAsync(0);
    expect(state()).toBe("ok");
  });

  it("When the handler answers in time, Then that is the answer and no timer keeps the process alive", async () => {
    const h = pending();
    const state = track(h.handler(call(50)));
    expect(queueTimerAlive()).toBe(true);
    h.answer();
    await vi.advanceTimersByTimeAsync(0);
    expect(state()).toBe("ok");
    expect(queueTimerAlive()).toBe(false);
    await vi.advanceTimersByTimeAsync(100);
    expect(state()).toBe("ok");
  });

  it("When many calls are in flight, Then one timer serves them all", async () => {
    const calls = Array.from({ length: 50 }, (_, i) => {
      const h = pending();
      return { h, state: track(h.handler(call(100 + i))) };
    });
    expect(vi.getTimerCount()).toBe(1);
    expect(setTimeout).toHaveBeenCalledTimes(1);
    for (const { h } of calls.filter((_, i) => i % 2 === 0)) h.answer();
    await vi.advanceTimersByTimeAsync(200);
    expect(calls.map((c) => c.state())).toEqual(
      calls.map((_, i) => (i % 2 === 0 ? "ok" : "DeadlineExceeded")),
    );
    expect(vi.getTimerCount()).toBe(0);
  });

  it("When the handler throws instead of rejecting, Then that error is the answer", async () => {
    const throwing = bounded(() => {
      throw new ConnectError("no", Code.Aborted);
    });
    const state = track(throwing(call(50)));
    await vi.advanceTimersByTimeAsync(0);
    expect(state()).toBe("Aborted");
    expect(queueTimerAlive()).toBe(false);
  });

  it("When the handler reads the call, Then it sees the caller and the gate, the received call unchanged", () => {
    const h = pending();
    const sent = call(50);
    void h.handler(sent).catch(() => undefined);
    const seen = h.seen();
    expect(seen).not.toBe(sent);
    expect(seen.caller).toBe(sent.caller);
    expect(seen.values.get(callerKey)).toBe(sent.caller);
    expect(seen.values.get(commitGateKey)).not.toBe(commitGateKey.defaultValue);
    expect(sent.values.get(commitGateKey)).toBe(commitGateKey.defaultValue);
    seen.values.get(commitGateKey)();
    h.answer();
  });
});
