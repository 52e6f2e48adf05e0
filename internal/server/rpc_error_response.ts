import { constants } from "node:http2";
import type { ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { Request, Response } from "./http_routes.js";

/**
 * Answers a call on the HTTP port with an error, in the caller's protocol:
 * trailers-only for gRPC and gRPC-Web, a Connect error otherwise. For calls
 * that never reached connect's handlers, or that it refused before ours ran.
 */
export function writeRpcError(
  req: Request,
  res: Response,
  err: ConnectError,
  extraHeaders: Record<string, string> = {},
): void {
  // What is left of the body is not read (it may be gigabytes): the answer
  // ends the stream, or the HTTP/1.1 connection.
  const unread = !req.complete;
  const contentType = String(req.headers["content-type"] ?? "");
  if (contentType.startsWith("application/grpc")) {
    const headers = Object.fromEntries(
      setTrailerStatus(new Headers({ ...extraHeaders, "content-type": contentType }), err),
    );
    // Trailers-only: over HTTP/2 the status must ride on the one HEADERS frame
    // that ends the stream.
    if ("stream" in res) {
      res.stream.respond({ ":status": 200, ...headers }, { endStream: true });
      if (unread) res.stream.close(constants.NGHTTP2_NO_ERROR);
    } else {
      res.writeHead(200, unread ? { ...headers, connection: "close" } : headers);
      res.end();
    }
    return;
  }
  const headers: Record<string, string> = { ...extraHeaders, "content-type": "application/json" };
  if (unread && !("stream" in res)) headers.connection = "close";
  res.writeHead(codeToHttpStatus(err.code), headers);
  res.end(JSON.stringify(errorToJson(err, undefined)), () => {
    if (unread && "stream" in res) res.stream.close(constants.NGHTTP2_NO_ERROR);
  });
}
