import { connect as h2connect, type ClientHttp2Session } from "node:http2";
import { connect as netConnect } from "node:net";
import { brotliDecompressSync, gunzipSync } from "node:zlib";

/** A small seeded generator (mulberry32): a failing run can be replayed. */
export function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { int, bytes, pick };
}
export type Random = ReturnType<typeof random>;

// Protobuf-shaped noise: tags with every wire type, lengths that lie, strings
// with NUL and invalid UTF-8, varints that never end.
export function protobufNoise(r: Random): Buffer {
  const parts: Buffer[] = [];
  for (let i = r.int(6); i >= 0; i--) {
    const field = r.pick([1, 2, 3, 4, 5, 6, 15, 16, 2047, 536870911]);
    const wire = r.int(8);
    parts.push(varint(field * 8 + wire));
    if (wire === 0) parts.push(r.pick([varint(r.int(1e9)), Buffer.from([0xff, 0xff, 0xff])]));
    else if (wire === 2) {
      const payload = r.pick([
        Buffer.from("a\u0000b"),
        Buffer.from([0xc3, 0x28, 0xff, 0xfe]),
        Buffer.from("x".repeat(r.int(300))),
        r.bytes(r.int(40)),
      ]);
      parts.push(varint(r.pick([payload.length, payload.length + 7, 2 ** 31])), payload);
    } else parts.push(r.bytes(r.int(9)));
  }
  return Buffer.concat(parts);
}

export function jsonNoise(r: Random): Buffer {
  return r.pick([
    () => Buffer.from(`{"id": "${r.bytes(8).toString("hex")}"}`),
    () => Buffer.from(`{"username": "a\\u0000b", "password": "x", "email": "a@b.c"}`),
    () =>
      Buffer.concat([
        Buffer.from('{"username": "'),
        Buffer.from([0xff, 0xc3, 0x28]),
        Buffer.from('"}'),
      ]),
    () => Buffer.from("[".repeat(5000)),
    () => Buffer.from(`{"id": ${"9".repeat(400)}}`),
    () => Buffer.from(`{"view": "VIEW_MASK", "id": "1"}`),
    () => r.bytes(r.int(64)),
    () => Buffer.from(""),
  ])();
}

/** A gRPC / gRPC-Web length-prefixed frame, possibly lying about itself. */
export function frame(r: Random, payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = r.pick([0, 0, 1, 0x80, 0x7f]);
  head.writeUInt32BE(
    r.pick([payload.length, payload.length, payload.length + 3, 0xffffffff, 2 ** 24]),
    1,
  );
  return Buffer.concat([head.subarray(0, r.pick([5, 5, 5, 3])), payload]);
}

export interface Answer {
  /** gRPC status from headers or trailers, or undefined. */
  grpcStatus?: string;
  /** A google.rpc.Status came with it (gRPC's grpc-status-details-bin). */
  grpcDetails: boolean;
  httpStatus: number;
  /** The body, decompressed. */
  body: Buffer;
}

/** One HTTP/2 request; resolves with what came back (or undefined if the stream was reset). */
export function h2request(
  session: ClientHttp2Session,
  path: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<Answer | undefined> {
  return new Promise((resolve) => {
    // endStream false: node would end a GET's stream before its (lying) body.
    const stream = session.request(
      { ":method": "POST", ":path": path, ...headers },
      { endStream: false },
    );
    const chunks: Buffer[] = [];
    let answer: Answer = { httpStatus: 0, grpcDetails: false, body: Buffer.alloc(0) };
    let encoding: string | undefined;
    stream.on("response", (h) => {
      encoding = h["content-encoding"] as string | undefined;
      answer = {
        ...answer,
        httpStatus: Number(h[":status"]),
        grpcStatus: h["grpc-status"] as string,
        grpcDetails: "grpc-status-details-bin" in h,
      };
    });
    stream.on("trailers", (t) => {
      answer.grpcStatus ??= t["grpc-status"] as string;
      answer.grpcDetails ||= "grpc-status-details-bin" in t;
    });
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("close", () => {
      if (!answer.httpStatus) return resolve(undefined);
      const raw = Buffer.concat(chunks);
      const body =
        encoding === "gzip" ? gunzipSync(raw) : encoding === "br" ? brotliDecompressSync(raw) : raw;
      resolve({ ...answer, body });
    });
    stream.on("error", () => undefined);
    stream.setTimeout(10_000, () => stream.close());
    stream.end(body);
  });
}

export function h2session(port: number): ClientHttp2Session {
  const session = h2connect(`http://127.0.0.1:${port}`);
  session.on("error", () => undefined);
  return session;
}

/** Raw bytes to a port; resolves when the server closes or after `ms`. */
export function rawBytes(port: number, bytes: Buffer, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket = netConnect(port, "127.0.0.1");
    let got = "";
    const done = () => {
      socket.destroy();
      resolve(got);
    };
    socket.on("data", (c: Buffer) => (got += c.toString("latin1")));
    socket.on("error", done);
    socket.on("close", done);
    socket.setTimeout(ms, done);
    socket.write(bytes);
  });
}

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}
