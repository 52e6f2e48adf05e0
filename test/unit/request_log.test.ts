import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { afterAll, describe, expect, it } from "vitest";
import { GetUserRequestSchema, UserService } from "../../api/user/v1/user_pb.js";
import { ConfigError, loadConfig, parseConfig } from "../../internal/conf/load.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { requestLog } from "../../internal/server/middleware/logging.js";
import { createCall, withValue } from "../../internal/transport/call.js";
import { callerKey } from "../../internal/transport/caller.js";

const minimal = { kms: { root_key: Buffer.alloc(32, 1).toString("base64") } };
const dir = mkdtempSync(join(tmpdir(), "kbts-reqlog-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("log.request_sample", () => {
  it("When a file leaves it out, Then every call is logged (1)", () => {
    expect(parseConfig(minimal, "t").log?.requestSample).toBe(1);
  });

  it.each([0, 0.01, 1])("When the file says %s, Then that is the fraction", (fraction) => {
    expect(
      parseConfig({ ...minimal, log: { request_sample: fraction } }, "t").log?.requestSample,
    ).toBe(fraction);
  });

  it.each([
    ["-0.1", "-0.1"],
    ["1.5", "1.5"],
    ["NaN", ".nan"],
    ["a word", "often"],
  ])("When the file says %s, Then start-up stops naming log.request_sample", (_what, yaml) => {
    const path = join(dir, "c.yaml");
    writeFileSync(
      path,
      `kms: { root_key: "${minimal.kms.root_key}" }\nlog: { request_sample: ${yaml} }\n`,
    );
    expect(() => loadConfig(path, {})).toThrow(ConfigError);
    expect(() => loadConfig(path, {})).toThrow(/^config .*c\.yaml: log\.request_sample: /);
  });
});

/** A GetUser call on `transport`, without a caller. */
const getUser = (transport: "grpc" | "connect") =>
  createCall({
    service: UserService,
    method: UserService.method.getUser,
    request: create(GetUserRequestSchema, { id: 1n }),
    deadline: undefined,
    transport,
    requestHeader: new Headers(),
  });

describe("the request log", () => {
  function capture(sample: number, draws: number[]) {
    const lines: Record<string, unknown>[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString().trim().split("\n")) lines.push(JSON.parse(line));
        cb();
      },
    });
    const log = createLogger({ level: "info", format: "json", destination });
    let i = 0;
    const observer = requestLog(log, sample, () => draws[i++ % draws.length]!)!;
    const call = getUser("grpc");
    return { lines, log: (code: string) => observer(call, code, 1.5) };
  }

  it("When the fraction is 1, Then every call has its line", () => {
    const { lines, log } = capture(1, [0.99]);
    for (let i = 0; i < 10; i++) log("OK");
    expect(lines).toHaveLength(10);
  });

  it("When the fraction is 0.25, Then a successful call is logged when its draw is under it, a failure always", () => {
    const { lines, log } = capture(0.25, [0.1, 0.3, 0.24, 0.25, 0.9]);
    for (let i = 0; i < 5; i++) log("OK");
    expect(lines.map((l) => l.code)).toEqual(["OK", "OK"]);
    for (const code of ["NOT_FOUND", "INTERNAL", "UNAUTHENTICATED"]) log(code);
    expect(lines.map((l) => l.code)).toEqual([
      "OK",
      "OK",
      "NOT_FOUND",
      "INTERNAL",
      "UNAUTHENTICATED",
    ]);
  });

  it("When the fraction is 0, Then no successful call is logged, every failure is", () => {
    const { lines, log } = capture(0, [0]);
    log("OK");
    log("DEADLINE_EXCEEDED");
    expect(lines).toEqual([
      expect.objectContaining({
        rpc: "user.v1.UserService/GetUser",
        code: "DEADLINE_EXCEEDED",
        ms: 1.5,
      }),
    ]);
  });

  it("When a call is logged, Then its line is the one pino writes for the same fields, byte for byte", () => {
    const raw: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        raw.push(...chunk.toString().split(/(?<=\n)/));
        cb();
      },
    });
    const log = createLogger({ level: "info", format: "json", destination });
    const observer = requestLog(log)!;
    const call = getUser("connect");
    const pinoLine = (caller: string | undefined, code: string, ms: number) =>
      log
        .child({ rpc: "user.v1.UserService/GetUser", transport: "connect" }, { redact: [] })
        .info({ caller, code, ms }, "rpc");
    const sameTime = (l: string) => l.replace(/"time":"[^"]*"/, '"time":"T"');
    const names = [undefined, "jwt:alice", 'jwt:"quoted" \\ é 🙂 \u0001', "anonymous"];
    for (const name of names) {
      const who =
        name === undefined ? call : withValue(call, callerKey, { name, scopes: new Set<string>() });
      observer(who, "NOT_FOUND", 12.34567);
      pinoLine(name, "NOT_FOUND", 12.346);
      observer(who, "OK", 0.0004);
      pinoLine(name, "OK", 0);
    }
    expect(raw).toHaveLength(names.length * 4);
    for (let i = 0; i < raw.length; i += 2) {
      expect(sameTime(raw[i]!)).toBe(sameTime(raw[i + 1]!));
      expect(JSON.parse(raw[i]!)).toMatchObject({
        level: "info",
        msg: "rpc",
        service: expect.any(String),
      });
    }
  });

  it("When lines are written in one millisecond or across several, Then each carries the time as pino's isoTime writes it", () => {
    const { lines, log } = capture(1, [0]);
    const before = new Date().toISOString();
    for (let i = 0; i < 50; i++) log("OK");
    const after = new Date().toISOString();
    for (const l of lines) {
      expect(l.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect((l.time as string) >= before && (l.time as string) <= after).toBe(true);
    }
  });
});
