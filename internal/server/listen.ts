import { createServer as createNetServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { createServer as createTlsServer } from "node:tls";
import type { TlsConfig } from "./tls.js";

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
 * Our own listener for a port. A plain connection is handed to `handOver` at
 * its first byte, still unread, so the receiving server sees it all (and
 * `h2` says whether it opened with the HTTP/2 preface); a TLS connection once
 * its handshake is done (`h2` from ALPN). Until then it is ours: one silent
 * for `idleMs` (or whose handshake takes as long) is closed. `sockets` holds
 * every open connection; `silent` tells those that never sent a request's
 * byte, which shutdown closes at once.
 */
export function connectionListener(
  idleMs: number,
  tls: { config: TlsConfig; alpn: string[] } | undefined,
  handOver: (socket: Duplex, h2: boolean) => void,
): { listener: Server; sockets: Set<Socket>; silent: (socket: Socket) => boolean } {
  const sockets = new Set<Socket>();
  // Connections handed to a server. One that never was has no call: a plain
  // one that sent nothing, a TLS one still in its handshake. (A handshaken
  // TLS connection counts as handed over: its first request may ride in the
  // handshake's last packet, so its bytes cannot tell.)
  const handed = new WeakSet<Socket>();
  // The raw connection under a TLS one, found by its peer address.
  const byPeer = new Map<string, Socket>();
  const peer = (s: { remoteAddress?: string; remotePort?: number }) =>
    `${s.remoteAddress}:${s.remotePort}`;
  // node's own TLS server does the handshake; its connections are handed over
  // once secure. Each new connection takes the context current at the time.
  const secure =
    tls &&
    createTlsServer(
      {
        requestCert: tls.config.mutual,
        rejectUnauthorized: tls.config.mutual,
        ALPNProtocols: tls.alpn,
        handshakeTimeout: idleMs,
      },
      (socket) => {
        const raw = byPeer.get(peer(socket));
        if (raw) handed.add(raw);
        handOver(socket, socket.alpnProtocol === "h2");
      },
    );
  if (secure && tls) secure.setSecureContext(tls.config.attach(secure));
  secure?.on("tlsClientError", (_err, socket) => socket.destroy());
  const listener = createNetServer((raw) => {
    sockets.add(raw);
    const key = peer(raw);
    raw.on("close", () => {
      sockets.delete(raw);
      if (byPeer.get(key) === raw) byPeer.delete(key);
    });
    // A reset before the first byte would otherwise be an unhandled error.
    raw.on("error", () => raw.destroy());
    if (secure) {
      // The handshake is bounded by handshakeTimeout; after it, the servers'
      // own idle rules apply (a timer here would cut long silent calls).
      byPeer.set(key, raw);
      secure.emit("connection", raw);
      return;
    }
    raw.setTimeout(idleMs, () => raw.destroy());
    raw.once("data", (first: Buffer) => {
      raw.setTimeout(0);
      raw.pause();
      raw.unshift(first);
      handed.add(raw);
      handOver(raw, first.subarray(0, HTTP2_PREFACE.length).equals(HTTP2_PREFACE));
      process.nextTick(() => raw.resume());
    });
  });
  const silent = (socket: Socket) => !handed.has(socket);
  return { listener, sockets, silent };
}

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0");
