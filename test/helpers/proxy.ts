import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP proxy in front of the test database: `down()` cuts every connection
 * and refuses new ones, as a database that went away; `up()` brings it back.
 */
export async function databaseProxy(target: URL) {
  let upstreamPort = Number(target.port || 5432);
  let open = true;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (!open) return client.destroy();
    const upstream = connect(upstreamPort, target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String((server.address() as { port: number }).port);
  return {
    url: url.toString(),
    down() {
      open = false;
      for (const s of sockets) s.destroy();
    },
    up() {
      open = true;
    },
    /** Points new connections at another port (a restarted server). */
    retarget(port: number) {
      upstreamPort = port;
    },
    close: () => new Promise((r) => server.close(r)),
  };
}
