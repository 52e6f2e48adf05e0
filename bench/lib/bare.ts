import * as grpc from "@grpc/grpc-js";

/**
 * The limit a benchmark compares against: a bare @grpc/grpc-js server with
 * one raw unary handler on `path` (bytes in, bytes out), on a free loopback
 * port, counting the calls it answered without an error.
 */
export async function startBareServer(path: string, handler: grpc.handleUnaryCall<Buffer, Buffer>) {
  const server = new grpc.Server();
  const bytes = (b: Buffer) => b;
  const answered = { ok: 0, failed: 0 };
  const counted: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) =>
    handler(call, (err, value) => {
      if (err) answered.failed++;
      else answered.ok++;
      callback(err, value);
    });
  server.register<Buffer, Buffer>(path, counted, bytes, bytes, "unary");
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, answered: async () => ({ ...answered }), stop: () => server.forceShutdown() };
}
