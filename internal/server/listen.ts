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
 * its handshake is done (`h2` from ALPN). Until then it is ours: silent for
 * `idleMs`, it is closed (an HTTP/2 session, once it owns a socket, would
 * keep it). `sockets` holds every open connection, for shutdown.
 */
export function connectionListener(
  idleMs: number,
  tls: { config: TlsConfig; alpn: string[] } | undefined,
  handOver: (socket: Duplex, h2: boolean) => void,
): { listener: Server; sockets: Set<Socket> } {
  const sockets = new Set<Socket>();
  // node's own TLS server does the handshake; its connections are handed over
  // once secure. Each new connection takes the context current at the time.
  const secure =
    tls &&
    createTlsServer(
      {
        requestCert: tls.config.mutual,
        rejectUnauthorized: tls.config.mutual,
        ALPNProtocols: tls.alpn,
      },
      (socket) => {
        socket.setTimeout(0);
        handOver(socket, socket.alpnProtocol === "h2");
      },
    );
  if (secure && tls) secure.setSecureContext(tls.config.attach(secure));
  secure?.on("tlsClientError", (_err, socket) => socket.destroy());
  const listener = createNetServer((raw) => {
    sockets.add(raw);
    raw.on("close", () => sockets.delete(raw));
    // A reset before the first byte would otherwise be an unhandled error.
    raw.on("error", () => raw.destroy());
    raw.setTimeout(idleMs, () => raw.destroy());
    if (secure) {
      secure.emit("connection", raw);
      return;
    }
    raw.once("data", (first: Buffer) => {
      raw.setTimeout(0);
      raw.pause();
      raw.unshift(first);
      handOver(raw, first.subarray(0, HTTP2_PREFACE.length).equals(HTTP2_PREFACE));
      process.nextTick(() => raw.resume());
    });
  });
  return { listener, sockets };
}

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0");
