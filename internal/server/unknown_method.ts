import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { ErrorInfoSchema } from "../../third_party/google/rpc/error_details_pb.js";
import type { Request, Response } from "./http_routes.js";

// `/package.Service/Method`
const RPC_PATH = /^\/([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)\.[A-Za-z_]\w*\/[A-Za-z_]\w*$/;

/**
 * Answers a call to a method we do not serve as the gRPC port does
 * (UNIMPLEMENTED, with an ErrorInfo), in the caller's protocol: trailers-only
 * for gRPC and gRPC-Web, a Connect error otherwise. Returns false for
 * anything that is not such a call. The path is not echoed.
 */
export function answerUnknownMethod(
  req: Request,
  res: Response,
  path: string,
  packages: ReadonlySet<string>,
): boolean {
  const m = RPC_PATH.exec(path);
  if (req.method !== "POST" || !m) return false;
  const domain = packages.has(m[1]!) ? m[1]! : "";
  const err = new ConnectError("unknown method", Code.Unimplemented, undefined, [
    { desc: ErrorInfoSchema, value: { reason: "NOT_IMPLEMENTED", domain } },
  ]);
  req.resume();
  const contentType = String(req.headers["content-type"] ?? "");
  if (contentType.startsWith("application/grpc")) {
    const headers = Object.fromEntries(
      setTrailerStatus(new Headers({ "content-type": contentType }), err),
    );
    // Trailers-only: over HTTP/2 the status must ride on the one HEADERS frame
    // that ends the stream.
    if ("stream" in res) res.stream.respond({ ":status": 200, ...headers }, { endStream: true });
    else {
      res.writeHead(200, headers);
      res.end();
    }
    return true;
  }
  res.writeHead(codeToHttpStatus(err.code), { "content-type": "application/json" });
  res.end(JSON.stringify(errorToJson(err, undefined)));
  return true;
}
