import type { DescFile, DescService } from "@bufbuild/protobuf";
import { createServer, type Http2Server, type ServerHttp2Stream } from "node:http2";
import { file_google_rpc_error_details } from "../../../third_party/google/rpc/error_details_pb.js";
import { file_google_rpc_status } from "../../../third_party/google/rpc/status_pb.js";
import { file_grpc_health_v1_health } from "../../../third_party/grpc/health/v1/health_pb.js";
import { file_grpc_reflection_v1_reflection } from "../../../third_party/grpc/reflection/v1/reflection_pb.js";
import type { ByteBudget } from "../../pkg/limit/queue.js";
import { dueQueue } from "../../pkg/timer/due.js";
import type { Route } from "../handlers.js";
import { connectionListener, listen } from "../listen.js";
import type { TlsConfig } from "../tls.js";
import { unknownMethodError } from "../unknown_method.js";
import { healthService } from "./health.js";
import { servePlain, type PlainMethod } from "./plain.js";
import { reflectionMethods } from "./reflection.js";
import { answerHttp, answerStatus } from "./respond.js";
import { trackSessions, type SessionPolicy } from "./sessions.js";
import { errorStatus } from "./status.js";
import { serveUnary } from "./unary.js";

// gRPC with protobuf messages: `application/grpc` or `application/grpc+proto`,
// parameters allowed. gRPC-Web and JSON are the HTTP port's.
const GRPC_PROTO = /^application\/grpc(\+proto)?\s*(;|$)/i;

export interface GrpcServerOptions extends SessionPolicy {
  addr: string;
  maxRequestBytes: number;
  /** Request bytes held at once across all calls, shared with the HTTP port. */
  inflight: ByteBudget;
  /** How long a request may take to arrive (server.grpc.timeout). */
  readTimeoutMs: number;
  /** HTTP/2: calls one connection may have open at once. */
  maxConcurrentStreams: number;
  /** HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE: a call's headers, decoded. */
  maxHeaderBytes: number;
  /** HTTP/2 flow control: bytes a client may send ahead on one call, and on its connection. */
  streamWindowBytes: number;
  connectionWindowBytes: number;
  tls: TlsConfig | undefined;
  services: DescService[];
  /** More files for reflection: what error details and reasons clients decode. */
  files: DescFile[];
  routes: Route[];
}

export interface GrpcServer {
  /** The port actually bound (useful when addr asks for port 0). */
  port: number;
  /** Sets grpc.health.v1 for the server and every service: SERVING only when ready. */
  setServing(ready: boolean): void;
  /** NOT_SERVING from now on, while still accepting calls (the drain delay). */
  draining(): void;
  /** Reports NOT_SERVING on grpc.health.v1, then lets in-flight calls finish
   *  for up to `timeoutMs`; true when they all did. */
  shutdown(timeoutMs: number): Promise<boolean>;
}

const ignore = () => undefined;

/**
 * The gRPC port, on node:http2's stream API: both services through the
 * chain, server reflection and grpc.health.v1 beside them.
 */
export async function startGrpcServer(opts: GrpcServerOptions): Promise<GrpcServer> {
  const names = opts.services.map((s) => s.typeName);
  const health = healthService(names);
  const files: DescFile[] = [
    ...opts.services.map((s) => s.file),
    ...opts.files,
    // Every error carries these: a reflection-only client must decode them.
    file_google_rpc_status,
    file_google_rpc_error_details,
    file_grpc_health_v1_health,
    file_grpc_reflection_v1_reflection,
  ];
  const plain = new Map<string, PlainMethod>([
    ...health.methods,
    ...reflectionMethods(files, [...names, "grpc.health.v1.Health"]),
  ]);
  const routes = new Map(opts.routes.map((r) => [`/${r.service.typeName}/${r.method.name}`, r]));
  const packages = new Set(opts.services.map((s) => s.file.proto.package));
  const calls = {
    budget: opts.inflight,
    maxRequestBytes: opts.maxRequestBytes,
    readTimeoutMs: opts.readTimeoutMs,
    stalls: dueQueue(),
  };

  const server: Http2Server = createServer({
    settings: {
      maxConcurrentStreams: opts.maxConcurrentStreams,
      initialWindowSize: opts.streamWindowBytes,
      maxHeaderListSize: opts.maxHeaderBytes,
    },
    // MB a connection may hold in header tables, streams and answers queued
    // to be sent; past it new calls are refused (request bodies are the
    // byte budget's).
    maxSessionMemory: 32,
  });
  server.on("session", (session) => {
    if (opts.connectionWindowBytes > 65_535) session.setLocalWindowSize(opts.connectionWindowBytes);
  });
  const sessions = trackSessions(server, opts);
  server.on("stream", (stream: ServerHttp2Stream, headers) => {
    // A client's reset surfaces as an error on its stream: the call is simply over.
    stream.on("error", ignore);
    const connection = sessions.began(stream.session!);
    stream.on("close", connection.done);
    if (headers[":method"] !== "POST") return answerHttp(stream, 405);
    if (!GRPC_PROTO.test(String(headers["content-type"]))) return answerHttp(stream, 415);
    const path = headers[":path"] ?? "";
    const route = routes.get(path);
    if (route) return serveUnary(stream, headers, route, calls, connection);
    const method = plain.get(path);
    if (method) return servePlain(stream, headers, method, calls, connection);
    answerStatus(stream, errorStatus(unknownMethodError(path, packages)), true);
  });

  const tls = opts.tls && { config: opts.tls, alpn: ["h2"] };
  // Our own listener: shutdown can then close a connection that never spoke.
  const { listener, sockets, silent } = connectionListener(opts.idleMs, tls, (socket, h2) => {
    // A TLS client that did not choose h2 has nothing to say here. A plain
    // connection goes to HTTP/2 whatever its first read held (a short read
    // cannot show the whole preface): node closes one that is not HTTP/2.
    if (tls && !h2) return socket.destroy();
    server.emit("connection", socket);
  });
  const port = await listen(listener, opts.addr).catch((err: Error) => {
    throw new Error(`gRPC server cannot listen on ${opts.addr}: ${err.message}`);
  });

  let stopping = false;
  return {
    port,
    setServing: (ready) => {
      if (!stopping) health.set(ready);
    },
    draining: () => {
      stopping = true;
      health.set(false);
    },
    shutdown: async (timeoutMs) => {
      stopping = true;
      health.set(false);
      health.endWatches();
      listener.close();
      // A connection that never sent a byte has no call and no session to close.
      for (const socket of sockets) if (silent(socket)) socket.destroy();
      sessions.closeAll();
      const closed = Promise.all(
        [...sockets].map((socket) => new Promise((resolve) => socket.once("close", resolve))),
      );
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        closed.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
      ]);
      clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      return drained;
    },
  };
}
