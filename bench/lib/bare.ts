import * as grpc from "@grpc/grpc-js";
import type { Answered } from "./compare.js";

/** A raw unary handler: the request's bytes in, the response's bytes out. */
export type BareHandler = grpc.handleUnaryCall<Buffer, Buffer>;

/** An encoded message as the Buffer grpc-js sends, without a copy. */
export const asBuffer = (b: Uint8Array): Buffer =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/**
 * The limit a benchmark compares against: a bare @grpc/grpc-js server with
 * one raw unary handler per path (bytes in, bytes out), on a free loopback
 * port, counting the calls it answered with and without an error. Run in a
 * process of its own (reference_main.ts), so that its CPU can be read.
 */
export async function startBareServer(handlers: Record<string, BareHandler>) {
  const server = new grpc.Server();
  const bytes = (b: Buffer) => b;
  const answered: Answered = { ok: 0, failed: 0 };
  for (const [path, handler] of Object.entries(handlers)) {
    const counted: BareHandler = (call, callback) =>
      handler(call, (err, value) => {
        if (err) answered.failed++;
        else answered.ok++;
        callback(err, value);
      });
    server.register<Buffer, Buffer>(path, counted, bytes, bytes, "unary");
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, answered: () => ({ ...answered }) };
}
