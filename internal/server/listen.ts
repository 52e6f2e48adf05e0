import { createServer as createNetServer, type Server, type Socket } from "node:net";

/** Listens on `host:port` (IPv6 in brackets; port 0 picks a free one); resolves with the bound port. */
export function listen(server: Server, addr: string): Promise<number> {
  const i = addr.lastIndexOf(":");
  const host = addr.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(addr.slice(i + 1));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : port);
    });
  });
}

/**
 * Our own listener for a port: each connection is handed to `handOver` at its
 * first byte (still unread, so the receiving server sees it all). Until then
 * it is ours: silent for `idleMs`, it is closed (an HTTP/2 session, once it
 * owns a socket, would keep it). `sockets` holds every open connection, for
 * shutdown.
 */
export function connectionListener(
  idleMs: number,
  handOver: (socket: Socket, first: Buffer) => void,
): { listener: Server; sockets: Set<Socket> } {
  const sockets = new Set<Socket>();
  const listener = createNetServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // A reset before the first byte would otherwise be an unhandled error.
    socket.on("error", () => socket.destroy());
    socket.setTimeout(idleMs, () => socket.destroy());
    socket.once("data", (first) => {
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(first);
      handOver(socket, first);
      process.nextTick(() => socket.resume());
    });
  });
  return { listener, sockets };
}
