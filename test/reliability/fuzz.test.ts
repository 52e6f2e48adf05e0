import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import type { Route } from "../../internal/server/handlers.js";
import { restBindings } from "../../internal/server/rest/bindings.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { rssBytes, startServerProcess, writeServerConfig } from "../helpers/process.js";
import {
  frame,
  h2request,
  h2session,
  jsonNoise,
  protobufNoise,
  random,
  rawBytes,
  type Answer,
  type Random,
} from "./fuzz.js";

const SEED = Number(process.env.FUZZ_SEED ?? 20261125);
const CALLS = 2400;
const paths = [UserService, KmsService].flatMap((s) =>
  s.methods.map((m) => `/${s.typeName}/${m.name}`),
);
// The REST routes, as the server reads them from the same descriptors.
const restRoutes = restBindings(
  [UserService, KmsService].flatMap((service) =>
    service.methods.map((method) => ({ service, method }) as unknown as Route),
  ),
).map((b) => ({ method: b.httpMethod, template: b.template.text }));

interface Case {
  port: "grpc" | "http";
  rest?: boolean;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

// Every protocol each port speaks, with bodies and headers that lie.
function nextCase(r: Random): Case {
  const path = r.int(20) === 0 ? "/user.v1.UserService/NoSuch" : r.pick(paths);
  const noise = () => (r.int(3) === 0 ? r.bytes(r.int(80)) : protobufNoise(r));
  const extra = r.pick<Record<string, string>>([
    {},
    {},
    { "grpc-timeout": r.pick(["-1", "1x", "99999999999S", "0m", ""]) },
    { "grpc-encoding": r.pick(["gzip", "zstd", "identity"]) },
    { "connect-timeout-ms": r.pick(["abc", "-5", "1e400"]) },
    { "content-encoding": r.pick(["gzip", "br", "nope"]) },
    // Long enough that connect would compress its error answer.
    { "grpc-timeout": "9".repeat(1200), "grpc-accept-encoding": "gzip" },
    { "connect-timeout-ms": "x".repeat(1200), "accept-encoding": "gzip, br" },
  ]);
  const kind = r.int(6);
  if (kind === 5) return restCase(r, extra);
  if (kind === 0)
    return {
      port: "grpc",
      path,
      headers: { "content-type": "application/grpc", te: "trailers", ...extra },
      body: frame(r, noise()),
    };
  if (kind === 1)
    return {
      port: "http",
      path,
      headers: { "content-type": "application/grpc+proto", te: "trailers", ...extra },
      body: frame(r, noise()),
    };
  if (kind === 2)
    return {
      port: "http",
      path,
      headers: { "content-type": "application/grpc-web+proto", ...extra },
      body: frame(r, noise()),
    };
  if (kind === 3)
    return {
      port: "http",
      path,
      headers: { "content-type": "application/proto", ...extra },
      body: noise(),
    };
  return {
    port: "http",
    path,
    headers: { "content-type": "application/json", ...extra },
    body: jsonNoise(r),
  };
}

// A REST route with lying variables, query strings, methods and bodies.
function restCase(r: Random, extra: Record<string, string>): Case {
  const route = r.pick(restRoutes);
  const variable = () =>
    r.pick(["1", "0", "-1", "abc", "%zz", "%00", "%2F", "9".repeat(40), "", "1:x", "VIEW_FULL"]);
  let path = route.template.replace(/\{[^}]+\}/g, variable);
  if (r.int(3) === 0)
    path += `?${r.pick([
      "view=VIEW_MASK",
      "view=1&view=2",
      "page_size=-1",
      "page_size=99999999999",
      "bogus=1",
      "%zz=1",
      "a.b.c=1",
      `name=${"x".repeat(600)}`,
      `page_token=${r.bytes(24).toString("hex")}`,
      "update_mask=phone",
    ])}`;
  const method = r.int(8) === 0 ? r.pick(["GET", "POST", "PUT", "PATCH", "DELETE"]) : route.method;
  return {
    port: "http",
    rest: true,
    path,
    headers: {
      ":method": method,
      "content-type": r.pick(["application/json", "application/json", "text/plain"]),
      ...extra,
    },
    body: r.int(4) === 0 ? Buffer.alloc(0) : jsonNoise(r),
  };
}

// What is wrong with an answer, if anything: none at all, INTERNAL or UNKNOWN
// (a fault of ours, not of the input), or a failure of a served method
// without the ErrorInfo every failure carries. grpc-js's own deadline and
// cancellation carry none by design (see docs/api.md), nor does its answer to an
// unknown method.
function fault(c: Case, a: Answer | undefined): string | undefined {
  if (!a) return "no answer";
  const text = a.body.toString("latin1");
  if (a.grpcStatus === "13" || a.grpcStatus === "2" || a.httpStatus === 500) return "internal";
  if (/"code":"(internal|unknown)"/.test(text)) return "internal";
  if (c.path.endsWith("/NoSuch") && c.port === "grpc") return undefined;
  const grpcLike = a.grpcStatus !== undefined;
  const failed = grpcLike ? a.grpcStatus !== "0" : a.httpStatus !== 200;
  // A REST path no route takes (an empty variable) is the plain 404, and a
  // route under another method 405 with Allow: neither is a call.
  const unrouted = c.rest === true && (a.httpStatus === 405 || /^\{"error"/.test(text));
  const bare = a.grpcStatus === "1" || a.grpcStatus === "4" || a.httpStatus === 415 || unrouted;
  const detailed = grpcLike ? a.grpcDetails : text.includes("google.rpc.ErrorInfo");
  return failed && !bare && !detailed ? "no ErrorInfo" : undefined;
}

describe("fuzzing both ports", () => {
  const dir = mkdtempSync(join(tmpdir(), "kbts-fuzz-"));
  let db: TestDatabase | undefined;
  afterAll(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers malformed protobuf, JSON, frames, prefixes and REST calls without INTERNAL, a crash or unbounded memory", async () => {
    db = await createTestDatabase();
    const conf = writeServerConfig(join(dir, "server.yaml"), db.url);
    const { server, ports } = await startServerProcess(conf);
    try {
      const sessions = { grpc: h2session(ports.grpc), http: h2session(ports.http) };
      const r = random(SEED);
      const faults: string[] = [];
      let answered = 0;
      let baseline = 0;
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < CALLS) {
            const i = next++;
            if (i === 300) baseline = await rssBytes(server.child.pid!);
            const c = nextCase(r);
            const answer = await h2request(sessions[c.port], c.path, c.headers, c.body);
            if (answer) answered++;
            const problem = fault(c, answer);
            if (problem)
              faults.push(
                `${problem}: ${c.port} ${c.path} ${JSON.stringify(c.headers).slice(0, 120)} ${c.body.toString("hex").slice(0, 80)}`,
              );
          }
        }),
      );
      for (const s of Object.values(sessions)) s.close();

      // Below the protocols: garbage after the HTTP/2 preface, broken HTTP/1.1,
      // a body that claims 4 GB, a gRPC length prefix of 4 GB.
      const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      for (let i = 0; i < 20; i++) {
        for (const port of [ports.grpc, ports.http]) {
          await rawBytes(port, Buffer.concat([preface, r.bytes(r.int(200))]), 500);
        }
        await rawBytes(
          ports.http,
          Buffer.concat([Buffer.from("POST /x HTTP/1.1\r\n"), r.bytes(100)]),
          500,
        );
      }
      const claim = await rawBytes(
        ports.http,
        Buffer.from(
          "POST /user.v1.UserService/GetUser HTTP/1.1\r\nhost: x\r\ncontent-type: application/proto\r\ncontent-length: 4000000000\r\n\r\nabc",
        ),
      );
      expect(claim).toMatch(/^HTTP\/1.1 429/);
      const session = h2session(ports.grpc);
      const prefix = Buffer.from([0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
      const huge = await h2request(
        session,
        paths[0]!,
        { "content-type": "application/grpc", te: "trailers" },
        prefix,
      );
      expect(huge?.grpcStatus).toBe("8");

      // Still alive, still answering, memory bounded, nothing INTERNAL in the log.
      expect(server.child.exitCode).toBeNull();
      const health = await h2request(
        session,
        "/grpc.health.v1.Health/Check",
        { "content-type": "application/grpc", te: "trailers" },
        Buffer.from([0, 0, 0, 0, 0]),
      );
      session.close();
      expect(health?.grpcStatus).toBe("0");
      expect((await fetch(`http://127.0.0.1:${ports.http}/healthz`)).status).toBe(200);
      expect(answered).toBe(CALLS);
      expect(faults, `seed ${SEED}: ${faults.slice(0, 5).join("\n")}`).toEqual([]);
      expect(server.output()).not.toMatch(/"code":"(INTERNAL|UNKNOWN)"/);
      expect(server.output()).not.toMatch(/unexpected fault|answering a call failed/);
      const grown = (await rssBytes(server.child.pid!)) - baseline;
      expect(grown, `RSS grew by ${Math.round(grown / 2 ** 20)} MiB`).toBeLessThan(200 * 2 ** 20);
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  });
});
