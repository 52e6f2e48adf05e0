import * as grpc from "@grpc/grpc-js";

/**
 * The limit a benchmark compares against: a bare @grpc/grpc-js server with
 * one raw unary handler on `path` (bytes in, bytes out), on a free loopback port.
 */
export async function startBareServer(path: string, handler: grpc.handleUnaryCall<Buffer, Buffer>) {
  const server = new grpc.Server();
  const bytes = (b: Buffer) => b;
  server.register<Buffer, Buffer>(path, handler, bytes, bytes, "unary");
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, stop: () => server.forceShutdown() };
}
