import { connect as h2connect } from "node:http2";
import { gzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  refusalOf,
  replaceOnOwnCall,
  returnOwnCall,
  writtenFor,
} from "../../internal/server/seams/grpc_js.js";
import { installedVersion, within } from "../helpers/seams.js";

// Pins what internal/server/seams/grpc_js.ts relies on in @grpc/grpc-js, on
// a real grpc-js server with one echo method and an interceptor built as
// the server's is: an upgrade that changes any of it fails here first.

const maxBytes = 16;
const path = "/test.Echo/Echo";
const identity = (b: Buffer) => b;

interface Seen {
  /** The class of the call the interceptor was handed. */
  callClass: string;
  /** What went through the replaced methods, in order. */
  events: string[];
  statuses: grpc.StatusObject[];
}

let server: grpc.Server;
let port: number;
const seen: Seen[] = [];

beforeAll(async () => {
  server = new grpc.Server({
    "grpc.max_receive_message_length": maxBytes,
    interceptors: [
      (_definition, call) => {
        const record: Seen = { callClass: call.constructor.name, events: [], statuses: [] };
        seen.push(record);
        replaceOnOwnCall(call, "sendStatus", (send) => (status) => {
          record.statuses.push(status as grpc.StatusObject);
          send(status);
        });
        replaceOnOwnCall(call, "start", (start) => (listener) => {
          record.events.push("start");
          start(listener);
        });
        replaceOnOwnCall(call, "startRead", (startRead) => () => {
          record.events.push("startRead");
          startRead();
        });
        return returnOwnCall(call);
      },
    ],
  });
  server.addService(
    {
      echo: {
        path,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    {
      echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
        cb(null, call.request),
    },
  );
  port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
});

afterAll(() => server.forceShutdown());

/** One raw HTTP/2 gRPC call; what the interceptor saw of it, and the grpc-status answered. */
async function call(
  headers: Record<string, string>,
  message: Buffer,
  compressed = false,
): Promise<{ seen: Seen; status: string | undefined; body: Buffer }> {
  const before = seen.length;
  const session = h2connect(`http://127.0.0.1:${port}`);
  const frame = Buffer.alloc(5);
  frame[0] = compressed ? 1 : 0;
  frame.writeUInt32BE(message.length, 1);
  const answer = await new Promise<{ status: string | undefined; body: Buffer }>((resolve) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let status: string | undefined;
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (status ??= h["grpc-status"] as string | undefined));
    stream.on("trailers", (t) => (status ??= t["grpc-status"] as string | undefined));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("close", () => resolve({ status, body: Buffer.concat(chunks) }));
    stream.end(Buffer.concat([frame, message]));
  });
  session.close();
  expect(seen.length).toBe(before + 1);
  return { seen: seen[before]!, ...answer };
}

describe("the grpc-js seam (seams/grpc_js.ts)", () => {
  it("was written for the installed @grpc/grpc-js", () => {
    const version = installedVersion("@grpc/grpc-js");
    expect(within(version, writtenFor), `@grpc/grpc-js ${version}: re-read the seam`).toBe(true);
  });

  it("When a call is served, Then the interceptor was handed grpc-js's own call and the replaced methods ran", async () => {
    const { seen: s, status, body } = await call({}, Buffer.from("hi"));
    expect(status).toBe("0");
    expect(body.subarray(5).toString()).toBe("hi");
    expect(s.callClass).toBe("BaseServerInterceptingCall");
    expect(s.events[0]).toBe("start");
    expect(s.events).toContain("startRead");
    expect(s.statuses.map((x) => x.code)).toEqual([grpc.status.OK]);
  });

  it.each([
    [
      "a bad grpc-timeout",
      { "grpc-timeout": "1x" },
      Buffer.from("hi"),
      false,
      grpc.status.INTERNAL,
      "bad_timeout",
    ],
    [
      "an unknown compression",
      { "grpc-encoding": "snappy" },
      Buffer.from("hi"),
      true,
      grpc.status.UNIMPLEMENTED,
      "bad_compression",
    ],
    [
      "a message over the limit",
      {},
      Buffer.alloc(maxBytes + 1),
      false,
      grpc.status.RESOURCE_EXHAUSTED,
      "too_large",
    ],
    [
      "an oversized decompressed message",
      { "grpc-encoding": "gzip" },
      gzipSync(Buffer.alloc(10 * maxBytes)),
      true,
      grpc.status.RESOURCE_EXHAUSTED,
      "too_large",
    ],
    [
      "a message that does not decompress",
      { "grpc-encoding": "gzip" },
      Buffer.from("not gzip"),
      true,
      grpc.status.INTERNAL,
      "malformed",
    ],
  ] as const)(
    "When grpc-js refuses %s itself, Then it does so through the replaced sendStatus, in words refusalOf knows",
    async (_what, headers, message, compressed, code, refusal) => {
      const { seen: s, status } = await call(headers, message, compressed);
      expect(status).toBe(String(code));
      const own = s.statuses[0]!;
      expect(own.code).toBe(code);
      expect(refusalOf(own)).toBe(refusal);
    },
  );
});
