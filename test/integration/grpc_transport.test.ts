import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { gzipSync } from "node:zlib";
import { connect as h2connect, type ClientHttp2Session, type Settings } from "node:http2";
import { connect as netConnect } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import {
  HashFieldRequestSchema,
  HashFieldResponseSchema,
  KmsService,
} from "../../api/kms/v1/kms_pb.js";
import { StatusSchema } from "../../third_party/google/rpc/status_pb.js";
import { ServerReflectionRequestSchema } from "../../third_party/grpc/reflection/v1/reflection_pb.js";
import { startTestApp, useTestApps } from "../helpers/app.js";
import { failureOf } from "../helpers/errors.js";
import { grpcDefinition } from "../helpers/grpc_definition.js";

// The gRPC port's own transport (internal/server/grpc), item by item, as
// raw HTTP/2 and as grpc-js clients see it. What every port-9000 test
// already covers (reflection, health, limits, TLS, shutdown) is not repeated.
const ctx = useTestApps();
const open = { auth: { enabled: false } };
// A config's `server` section replaces the tests': the HTTP port on a free port too.
const http = { addr: "127.0.0.1:0" };

const HASH = "/kms.v1.KmsService/HashField";
const REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const request = toBinary(
  HashFieldRequestSchema,
  create(HashFieldRequestSchema, { fieldName: "email", value: "Ann@Example.com" }),
);

function framed(message: Uint8Array, compressed = false): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

interface Answer {
  /** The response headers. */
  headers: Record<string, unknown>;
  /** The trailers; undefined for a trailers-only answer. */
  trailers: Record<string, unknown> | undefined;
  /** The status, wherever it came. */
  status: string | undefined;
  data: Buffer;
  /** The answer's HEADERS frame ended the stream (trailers-only). */
  trailersOnly: boolean;
}

/** One raw call on `session`: `headers` beside the usual ones, `body` sent and ended (unless `end` is false). */
function call(
  session: ClientHttp2Session,
  headers: Record<string, string>,
  body: Buffer,
  { path = HASH, end = true } = {},
): Promise<Answer> {
  return new Promise((resolve) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    const answer: Answer = {
      headers: {},
      trailers: undefined,
      status: undefined,
      data: Buffer.alloc(0),
      trailersOnly: false,
    };
    stream.on("response", (h, flags) => {
      answer.headers = { ...h };
      answer.trailersOnly = (flags & 1) === 1;
      answer.status ??= h["grpc-status"] as string | undefined;
    });
    stream.on("trailers", (t) => {
      answer.trailers = { ...t };
      answer.status = t["grpc-status"] as string | undefined;
    });
    stream.on("data", (c: Buffer) => (answer.data = Buffer.concat([answer.data, c])));
    stream.on("error", () => undefined);
    stream.on("close", () => resolve(answer));
    if (end) stream.end(body);
    else stream.write(body);
  });
}

const hashOf = (answer: Answer) =>
  fromBinary(HashFieldResponseSchema, answer.data.subarray(5)).hash;

function detailsOf(answer: Answer) {
  const bin = (answer.trailers ?? answer.headers)["grpc-status-details-bin"] as string;
  return fromBinary(StatusSchema, Buffer.from(bin, "base64"));
}

describe("the gRPC port's transport", () => {
  it("reads grpc-timeout in each unit, and refuses a malformed one trailers-only with INVALID_ARGUMENT", async () => {
    const app = await ctx.start(open);
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    try {
      for (const timeout of ["1H", "1M", "20S", "20000m", "20000000u", "99999999n"]) {
        const answer = await call(session, { "grpc-timeout": timeout }, framed(request));
        expect(answer.status, timeout).toBe("0");
        expect(answer.trailersOnly, timeout).toBe(false);
      }
      for (const timeout of ["123456789S", "1", "S", "-1S", "1s", "1.5S"]) {
        const answer = await call(session, { "grpc-timeout": timeout }, framed(request));
        expect(answer.status, timeout).toBe(String(grpc.status.INVALID_ARGUMENT));
        expect(answer.trailersOnly, timeout).toBe(true);
        expect(answer.headers["grpc-message"]).toBe("invalid timeout header");
        expect(answer.data.length).toBe(0);
      }
    } finally {
      session.close();
    }
  });

  it("answers DEADLINE_EXCEEDED when the client's deadline passes before its request has arrived", async () => {
    const app = await ctx.start(open);
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    try {
      // Half a message, never finished.
      const half = framed(request).subarray(0, 8);
      const answer = await call(session, { "grpc-timeout": "300m" }, half, { end: false });
      expect(answer.status).toBe(String(grpc.status.DEADLINE_EXCEEDED));
      expect(answer.trailersOnly).toBe(true);
    } finally {
      session.close();
    }
  });

  it("serves gzip-compressed requests, and refuses what does not decompress, a bomb and an unknown encoding", async () => {
    const app = await ctx.start({
      ...open,
      server: { grpc: { addr: "127.0.0.1:0", max_request_bytes: 64 * 1024 }, http },
    });
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    try {
      const plain = await call(session, {}, framed(request));
      const gzipped = await call(
        session,
        { "grpc-encoding": "gzip" },
        framed(gzipSync(request), true),
      );
      expect(gzipped.status).toBe("0");
      expect(hashOf(gzipped)).toBe(hashOf(plain));
      expect(gzipped.headers["grpc-accept-encoding"]).toBe("identity,gzip");
      // Flagged compressed, but the call names no encoding.
      const unnamed = await call(session, {}, framed(gzipSync(request), true));
      expect(unnamed.status).toBe(String(grpc.status.INVALID_ARGUMENT));
      const garbage = await call(
        session,
        { "grpc-encoding": "gzip" },
        framed(Buffer.from("not gzip at all"), true),
      );
      expect(garbage.status).toBe(String(grpc.status.INVALID_ARGUMENT));
      // 1 KiB that inflates past max_request_bytes.
      const bomb = gzipSync(Buffer.alloc(4 * 1024 * 1024));
      expect(bomb.length).toBeLessThan(64 * 1024);
      const tooLarge = await call(session, { "grpc-encoding": "gzip" }, framed(bomb, true));
      expect(tooLarge.status).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
      expect(detailsOf(tooLarge).message).toBe(`request larger than ${64 * 1024} bytes`);
      const zstd = await call(session, { "grpc-encoding": "zstd" }, framed(request));
      expect(zstd.status).toBe(String(grpc.status.UNIMPLEMENTED));
      expect(zstd.trailersOnly).toBe(true);
      expect(zstd.headers["grpc-accept-encoding"]).toBe("identity,gzip");
      expect(zstd.headers["grpc-message"]).toBe("request compression not supported (use gzip)");
    } finally {
      session.close();
    }
  });

  it("serves a grpc-js client that compresses its requests and sends text and binary metadata", async () => {
    const app = await ctx.start(open);
    const Ctor = grpc.makeGenericClientConstructor(grpcDefinition(KmsService), "KmsService");
    const client = new Ctor(`127.0.0.1:${app.grpcPort}`, grpc.credentials.createInsecure(), {
      "grpc.default_compression_algorithm": grpc.compressionAlgorithms.gzip,
    });
    const hashField = (
      client as unknown as Record<string, (...a: unknown[]) => void>
    ).hashField!.bind(client);
    try {
      const metadata = new grpc.Metadata();
      metadata.set("x-note", "plain text");
      metadata.set("x-trace-bin", Buffer.from([0, 1, 0xfe, 0xff]));
      const hash = await new Promise<string>((resolve, reject) =>
        hashField(
          create(HashFieldRequestSchema, { fieldName: "email", value: "ann@example.com" }),
          metadata,
          (err: Error | null, res: { hash: string }) => (err ? reject(err) : resolve(res.hash)),
        ),
      );
      expect(hash).toMatch(/^[0-9a-f]{64}$/);
      // A refusal's details arrive in grpc-status-details-bin, decoded by grpc-js.
      const failure = await new Promise((resolve) =>
        hashField(
          create(HashFieldRequestSchema, { fieldName: "Not A Name", value: "x" }),
          metadata,
          (err: Error | null) => resolve(failureOf(err)),
        ),
      );
      expect(failure).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        reason: "VALIDATION_FAILED",
        domain: "kms.v1",
      });
    } finally {
      client.close();
    }
  });

  it("answers what is not a gRPC call with HTTP statuses, and an unknown method UNIMPLEMENTED with ErrorInfo", async () => {
    const app = await ctx.start(open);
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    try {
      const get = await new Promise<number>((resolve) => {
        const stream = session.request({ ":method": "GET", ":path": HASH });
        stream.on("response", (h) => resolve(Number(h[":status"])));
        stream.on("error", () => undefined);
        stream.end();
      });
      expect(get).toBe(405);
      const json = await call(session, { "content-type": "application/json" }, Buffer.from("{}"));
      expect(json.headers[":status"]).toBe(415);
      const unknown = await call(session, {}, framed(request), {
        path: "/kms.v1.KmsService/NoSuchMethod",
      });
      expect(unknown.status).toBe(String(grpc.status.UNIMPLEMENTED));
      expect(unknown.trailersOnly).toBe(true);
      expect(detailsOf(unknown).details[0]?.typeUrl).toBe(
        "type.googleapis.com/google.rpc.ErrorInfo",
      );
    } finally {
      session.close();
    }
  });

  it("refuses a call that finds no room for its message in time RESOURCE_EXHAUSTED with RetryInfo", async () => {
    const app = await ctx.start({
      ...open,
      server: {
        grpc: { addr: "127.0.0.1:0", max_request_bytes: 2 ** 20 },
        http: { addr: "127.0.0.1:0", max_request_bytes: 2 ** 20 },
        max_inflight_request_bytes: 2 * 2 ** 20,
      },
    });
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    try {
      // A message announced at 1 MiB, never finished, holds half the room;
      // a second does the same; the third waits its 10 s for room, then is refused.
      const claim = Buffer.alloc(5);
      claim.writeUInt32BE(2 ** 20 - 16, 1);
      const holders = [0, 1].map(() => call(session, {}, claim, { end: false }));
      const refused = await call(session, { "grpc-timeout": "60S" }, claim, { end: false });
      expect(refused.status).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
      const status = detailsOf(refused);
      expect(status.message).toBe("server busy: too many request bytes in flight; retry");
      expect(status.details.map((d) => d.typeUrl)).toContain(
        "type.googleapis.com/google.rpc.RetryInfo",
      );
      session.destroy();
      await Promise.all(holders);
    } finally {
      session.destroy();
    }
  }, 30_000);

  it("advertises the configured HTTP/2 settings", async () => {
    const app = await ctx.start({
      ...open,
      server: {
        grpc: { addr: "127.0.0.1:0", max_concurrent_streams: 7, stream_window_bytes: 1048576 },
        http,
      },
    });
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    try {
      const settings = await new Promise<Settings>((resolve) =>
        session.once("remoteSettings", resolve),
      );
      expect(settings.maxConcurrentStreams).toBe(7);
      expect(settings.initialWindowSize).toBe(1048576);
    } finally {
      session.close();
    }
  });

  it("pings each connection every keepalive_time and closes one that does not answer", async () => {
    const app = await ctx.start({
      ...open,
      server: {
        grpc: { addr: "127.0.0.1:0", keepalive_time: "200ms", keepalive_timeout: "300ms" },
        http,
        idle_timeout: "1h",
      },
    });
    // A client that answers: pinged again and again, still open.
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    await new Promise<void>((resolve) => {
      let pings = 0;
      session.on("ping", () => ++pings === 3 && resolve());
    });
    expect(session.closed || session.destroyed).toBe(false);
    session.close();
    // A peer that speaks HTTP/2 but never answers a ping: closed.
    const frames = await new Promise<number[]>((resolve) => {
      const socket = netConnect(app.grpcPort, "127.0.0.1");
      const types: number[] = [];
      let got = Buffer.alloc(0);
      socket.on("data", (c: Buffer) => {
        got = Buffer.concat([got, c]);
        while (got.length >= 9 && got.length >= 9 + got.readUIntBE(0, 3)) {
          types.push(got[3]!);
          got = got.subarray(9 + got.readUIntBE(0, 3));
        }
      });
      socket.on("error", () => undefined);
      socket.on("close", () => resolve(types));
      socket.write(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
      // Empty SETTINGS, and the ack of the server's.
      socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0]));
    });
    expect(frames).toContain(6); // PING
  });

  it("sends GOAWAY ENHANCE_YOUR_CALM too_many_pings to a client that pings too often", async () => {
    const app = await ctx.start(open);
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    session.on("error", () => undefined);
    const goaway = new Promise<{ code: number; data: string }>((resolve) =>
      session.on("goaway", (code, _last, data) => resolve({ code, data: String(data ?? "") })),
    );
    await new Promise((resolve) => session.once("connect", resolve));
    for (let i = 0; i < 5 && !session.closed && !session.destroyed; i++) {
      await new Promise((resolve) => session.ping(resolve));
    }
    expect(await goaway).toEqual({ code: 11, data: "too_many_pings" });
    session.destroy();
  });

  it("on shutdown sends GOAWAY and still serves the call the client had begun", async () => {
    // Stopped here, not with the file's apps.
    const app = await startTestApp(ctx.db.url, open);
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    session.on("error", () => undefined);
    const goaway = new Promise<number>((resolve) => session.once("goaway", resolve));
    const whole = framed(request);
    // The connection in use: one call answered on it.
    expect((await call(session, {}, whole)).status).toBe("0");
    const stream = session.request({
      ":method": "POST",
      ":path": HASH,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => undefined);
    let status: string | undefined;
    stream.on("trailers", (t) => (status = t["grpc-status"] as string));
    const closed = new Promise((resolve) => stream.on("close", resolve));
    stream.resume();
    stream.write(whole.subarray(0, 8));
    const stopped = app.stop();
    expect(await goaway).toBe(0);
    stream.end(whole.subarray(8));
    await closed;
    expect(status).toBe("0");
    expect(await stopped).toBe(true);
    expect(session.closed || session.destroyed).toBe(true);
  });

  it("survives a client that resets a call waiting for room before its deadline refuses it", async () => {
    const app = await ctx.start({
      ...open,
      server: {
        grpc: { addr: "127.0.0.1:0", max_request_bytes: 2 ** 20 },
        http: { addr: "127.0.0.1:0", max_request_bytes: 2 ** 20 },
        max_inflight_request_bytes: 2 * 2 ** 20,
      },
    });
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    session.on("error", () => undefined);
    const claim = Buffer.alloc(5);
    claim.writeUInt32BE(2 ** 20 - 16, 1);
    const holders = [0, 1].map(() => call(session, {}, claim, { end: false }));
    // Waits for room, with some of its message sent, then is reset (NO_ERROR).
    const waiting = session.request({
      ":method": "POST",
      ":path": HASH,
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": "1S",
    });
    waiting.on("error", () => undefined);
    const message = Buffer.alloc(105);
    message.writeUInt32BE(100, 1);
    waiting.write(message.subarray(0, 20));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // More, buffered unread behind the paused stream, then the reset.
    waiting.write(message.subarray(20, 60));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await new Promise((resolve) => waiting.close(0, () => resolve(undefined)));
    // Past its deadline: the server would answer it now, on a stream that is gone.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    session.destroy();
    await Promise.all(holders);
    const again = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    try {
      expect((await call(again, {}, framed(request))).status).toBe("0");
    } finally {
      again.close();
    }
  });

  it("sends a stream's status in its trailers, then stops the client: a reflection stream past the limit", async () => {
    const app = await ctx.start(open);
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    try {
      const list = framed(
        toBinary(
          ServerReflectionRequestSchema,
          create(ServerReflectionRequestSchema, {
            messageRequest: { case: "listServices", value: "" },
          }),
        ),
      );
      const over = Buffer.alloc(5);
      over.writeUInt32BE(5 * 2 ** 20, 1);
      const answer = await call(session, {}, Buffer.concat([list, over]), {
        path: REFLECTION,
        end: false,
      });
      expect(answer.trailersOnly).toBe(false);
      expect(answer.data.length).toBeGreaterThan(0);
      expect(answer.trailers?.["grpc-status"]).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    } finally {
      session.close();
    }
  });

  it("reads no more reflection requests from a client that does not read the answers", async () => {
    const app = await ctx.start(open);
    const session = h2connect(`http://127.0.0.1:${app.grpcPort}`);
    session.on("error", () => undefined);
    const ask = framed(
      toBinary(
        ServerReflectionRequestSchema,
        create(ServerReflectionRequestSchema, {
          messageRequest: { case: "fileContainingSymbol", value: "user.v1.UserService" },
        }),
      ),
    );
    const before = process.memoryUsage().arrayBuffers;
    // 3 × 60 KB of small requests, each answered with many KB of descriptors.
    const streams = [0, 1, 2].map(() => {
      const stream = session.request({
        ":method": "POST",
        ":path": REFLECTION,
        "content-type": "application/grpc",
        te: "trailers",
      });
      stream.on("error", () => undefined);
      stream.pause();
      stream.write(
        Buffer.concat(Array.from({ length: Math.ceil(60_000 / ask.length) }, () => ask)),
      );
      return stream;
    });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const grown = process.memoryUsage().arrayBuffers - before;
    // Unchecked, this held some 500 MB of answers nobody read.
    expect(grown, `${Math.round(grown / 2 ** 20)} MiB`).toBeLessThan(64 * 2 ** 20);
    for (const s of streams) s.destroy();
    session.destroy();
  });
});
