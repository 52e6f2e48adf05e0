import {
  constants,
  createServer,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import type { AddressInfo } from "node:net";
import type { Answered } from "./compare.js";

/** A unary method's work: the request message's bytes in, the response's out. */
export type UnaryWork = (request: Uint8Array) => Uint8Array;

// grpc-js's default receive limit, so that both references refuse alike.
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

// gRPC status codes used here.
const INTERNAL = 13;
const UNIMPLEMENTED = 12;
const RESOURCE_EXHAUSTED = 8;

/**
 * The floor a gRPC server in Node can reach: unary gRPC written directly on
 * node:http2's stream API, with nothing but what a call needs (one
 * uncompressed length-prefixed message in, headers + one message +
 * `grpc-status: 0` trailers out, trailers-only for an error). No deadlines,
 * compression, metadata or interceptors: what a hand-written transport adds
 * to this is its own cost. Counts the calls it answered, OK and not.
 */
export async function startH2Unary(methods: Record<string, UnaryWork>) {
  const answered: Answered = { ok: 0, failed: 0 };
  const server = createServer();
  server.on("stream", (stream, headers) => serve(stream, headers, methods, answered));
  // A client that goes away mid-call is its own business.
  server.on("sessionError", () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return { port: (server.address() as AddressInfo).port, answered: () => ({ ...answered }) };
}

function serve(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  methods: Record<string, UnaryWork>,
  answered: Answered,
) {
  stream.on("error", () => undefined);
  const fail = (code: number, message: string) => {
    answered.failed++;
    if (stream.headersSent || stream.destroyed) return;
    stream.respond(
      {
        ":status": 200,
        "content-type": "application/grpc",
        "grpc-status": String(code),
        "grpc-message": encodeURIComponent(message),
      },
      { endStream: true },
    );
    // Stop reading what the client still sends.
    stream.close(constants.NGHTTP2_NO_ERROR);
  };
  const work = methods[headers[":path"] ?? ""];
  if (!work || !headers["content-type"]?.startsWith("application/grpc")) {
    fail(UNIMPLEMENTED, `no method ${headers[":path"]}`);
    return;
  }
  const chunks: Buffer[] = [];
  let length = 0;
  stream.on("data", (chunk: Buffer) => {
    length += chunk.length;
    if (length > MAX_MESSAGE_BYTES + 5) fail(RESOURCE_EXHAUSTED, "message too large");
    else chunks.push(chunk);
  });
  stream.on("end", () => {
    if (stream.headersSent) return;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    // Exactly one uncompressed message: flag 0, big-endian length, the bytes.
    if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
      fail(INTERNAL, "expected one uncompressed message");
      return;
    }
    let reply: Uint8Array;
    try {
      reply = work(body.subarray(5));
    } catch (err) {
      fail(INTERNAL, (err as Error).message);
      return;
    }
    const frame = Buffer.allocUnsafe(5 + reply.length);
    frame[0] = 0;
    frame.writeUInt32BE(reply.length, 1);
    frame.set(reply, 5);
    stream.respond(
      { ":status": 200, "content-type": "application/grpc" },
      { waitForTrailers: true },
    );
    stream.once("wantTrailers", () => {
      stream.sendTrailers({ "grpc-status": "0" });
      answered.ok++;
    });
    stream.end(frame);
  });
}
