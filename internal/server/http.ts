import { createServer as createHttp1Server } from "node:http";
import { createServer as createHttp2Server, type Http2Session } from "node:http2";
import type { Logger } from "../pkg/log/logger.js";
import { connectAdapter } from "./connect_adapter.js";
import type { ByteBudget } from "../pkg/limit/queue.js";
import { applyCors } from "./cors.js";
import { connectionListener, listen } from "./listen.js";
import type { Duplex } from "node:stream";
import type { TlsConfig } from "./tls.js";
import type { Route } from "./handlers.js";
import { plainRoutes, type PlainRoutes } from "./http_routes.js";
import { restAdapter } from "./rest/rest_adapter.js";

export interface HttpServerOptions extends PlainRoutes {
  addr: string;
  maxRequestBytes: number;
  /** A connection with nothing in progress is closed after this long. */
  idleMs: number;
  /** The longest a call may take (server.http.timeout). */
  callTimeoutMs: number;
  tls: TlsConfig | undefined;
  /** Request bytes held at once across all calls, shared with the gRPC port. */
  inflight: ByteBudget;
  corsAllowedOrigins: readonly string[];
  routes: Route[];
  log: Logger;
}

export interface HttpServer {
  port: number;
  /** Stops accepting, lets in-flight requests finish for up to `timeoutMs`,
   *  then closes what is left; true when nothing had to be cut. */
  shutdown(timeoutMs: number): Promise<boolean>;
}

/**
 * The HTTP port: Connect (JSON and binary), gRPC-Web and gRPC through
 * connect-node, the methods' google.api.http routes (JSON, as Kratos serves
 * them), plus /healthz, /readyz, /metrics and /openapi.yaml. Browsers speak HTTP/1.1
 * and servers often h2c (prior knowledge) on the same port, so each
 * connection is handed to the HTTP/1.1 or HTTP/2 server by its first bytes.
 */
export async function startHttpServer(opts: HttpServerOptions): Promise<HttpServer> {
  const connect = connectAdapter({
    routes: opts.routes,
    readMaxBytes: opts.maxRequestBytes,
    inflight: opts.inflight,
    fallback: restAdapter({
      routes: opts.routes,
      readMaxBytes: opts.maxRequestBytes,
      inflight: opts.inflight,
      fallback: plainRoutes(opts),
      log: opts.log,
    }),
    log: opts.log,
  });
  const handler: typeof connect = (req, res) => {
    if (applyCors(opts.corsAllowedOrigins, req, res)) return;
    connect(req, res);
  };
  const http1 = createHttp1Server(handler);
  http1.keepAliveTimeout = opts.idleMs;
  // Not listening itself, http1 applies no headersTimeout: an inactivity
  // timeout on each connection bounds a request that stalls, never shorter
  // than a call may take.
  http1.timeout = Math.max(opts.idleMs, opts.callTimeoutMs + 1000);
  // HTTP/1.1 connections and their requests in progress (pipelined ones
  // counted), for shutdown.
  const http1Sockets = new Set<Duplex>();
  const answering = new Map<Duplex, number>();
  let closing = false;
  http1.on("connection", (socket: Duplex) => {
    http1Sockets.add(socket);
    socket.once("close", () => http1Sockets.delete(socket));
  });
  http1.on("request", (req, res) => {
    const socket = req.socket;
    answering.set(socket, (answering.get(socket) ?? 0) + 1);
    // Once stopping, each answer ends its connection.
    if (closing) res.shouldKeepAlive = false;
    res.once("close", () => {
      const left = (answering.get(socket) ?? 1) - 1;
      if (left > 0) answering.set(socket, left);
      else answering.delete(socket);
    });
  });
  const http2 = createHttp2Server({}, handler);
  const sessions = new Set<Http2Session>();
  http2.on("session", (session) => {
    session.setTimeout(opts.idleMs, () => session.close());
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });

  const tls = opts.tls && { config: opts.tls, alpn: ["h2", "http/1.1"] };
  const { listener, sockets, silent } = connectionListener(opts.idleMs, tls, (socket, h2) =>
    (h2 ? http2 : http1).emit("connection", socket),
  );
  const port = await listen(listener, opts.addr).catch((err: Error) => {
    throw new Error(`HTTP server cannot listen on ${opts.addr}: ${err.message}`);
  });

  return {
    port,
    shutdown: async (timeoutMs) => {
      listener.close();
      http1.close();
      // A connection that never sent a request belongs to no call.
      for (const socket of sockets) if (silent(socket)) socket.destroy();
      for (const session of sessions) session.close();
      closing = true;
      // http1 never listens itself, so its own closeIdleConnections knows no
      // connection: one between requests is closed here, unless bytes of a
      // next request have come in since (it is then answered, and closed).
      const seen = new Map<Duplex, number>();
      const due = Date.now() + timeoutMs;
      while (sockets.size > 0 && Date.now() < due) {
        for (const socket of http1Sockets) {
          if (answering.has(socket)) continue;
          const read = (socket as Duplex & { bytesRead: number }).bytesRead;
          if (seen.get(socket) === read) socket.destroy();
          else seen.set(socket, read);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
      const drained = sockets.size === 0;
      for (const socket of sockets) socket.destroy();
      return drained;
    },
  };
}
