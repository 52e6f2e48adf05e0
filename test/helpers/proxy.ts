import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * What the proxy does with a chunk a client sends: pass it on; `stall` (pass
 * nothing more either way on that connection, keep both sockets open: a
 * paused proxy); `cut` (drop it and close both sockets: the server never sees
 * it); `deliver-then-cut` (pass it on, then drop the server's reply and close
 * both sockets: the client never learns what happened).
 */
export type Tap = "forward" | "stall" | "cut" | "deliver-then-cut";

/**
 * A TCP proxy in front of the test database: `down()` cuts every connection
 * and refuses new ones, as a database that went away; `up()` brings it back.
 * `tap` sees every chunk clients send and may stall or cut that connection.
 */
export async function databaseProxy(target: URL, { tap }: { tap?: (chunk: Buffer) => Tap } = {}) {
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
    if (!tap) {
      client.pipe(upstream).pipe(client);
      return;
    }
    let state: "forward" | "stalled" | "awaiting-reply" = "forward";
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (chunk: Buffer) => {
      if (state !== "forward") return;
      const verdict = tap(chunk);
      if (verdict === "stall") state = "stalled";
      else if (verdict === "cut") close();
      else {
        upstream.write(chunk);
        if (verdict === "deliver-then-cut") state = "awaiting-reply";
      }
    });
    upstream.on("data", (chunk: Buffer) => {
      if (state === "forward") client.write(chunk);
      else if (state === "awaiting-reply") close();
    });
    client.on("end", () => state === "forward" && upstream.end());
    upstream.on("end", () => state === "forward" && client.end());
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
    /** Closes the listener and every connection it still holds (stalled ones too). */
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(r);
      }),
  };
}
