import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createConnectRouter,
  createContextKey,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "../pkg/log/logger.js";
import { noDeadline } from "../pkg/rpc/call.js";
import { requestRefused } from "./errors.js";
import { refuse, type Route } from "./handlers.js";
import type { Request, Response } from "./http_routes.js";
import { writeRpcError } from "./rpc_error_response.js";

type NodeHandler = (req: Request, res: Response) => void;

export interface ConnectAdapterOptions {
  routes: Route[];
  /** Largest request message accepted, in bytes. */
  readMaxBytes: number;
  /** Serves every path that is not one of the routes. */
  fallback: NodeHandler;
  log: Logger;
}

// Set by our implementation when connect hands it a call: a unary call whose
// handler never ran was refused by connect itself.
const reached = createContextKey({ value: false });

/**
 * connect-node's adapter with one difference: a call connect refuses before
 * our handler runs (a body that does not decode or is over the limit, a bad
 * timeout header) is answered as the gRPC port answers it (same code, same
 * ErrorInfo, fixed message) and goes through the middleware chain, so that
 * it is logged and counted. connect alone would answer a malformed binary
 * body INTERNAL and quote JSON decode errors.
 */
export function connectAdapter(opts: ConnectAdapterOptions): NodeHandler {
  const router = createConnectRouter({
    readMaxBytes: opts.readMaxBytes,
    acceptCompression: [compressionGzip, compressionBrotli],
  });
  for (const route of opts.routes) router.rpc(route.method, implementation(route));
  const routeOf = new Map<DescMethod, Route>(opts.routes.map((r) => [r.method, r]));
  const byPath = new Map(
    router.handlers.map((handler) => [
      handler.requestPath,
      { handler, route: routeOf.get(handler.method)! },
    ]),
  );
  return (req, res) => {
    const entry = byPath.get((req.url ?? "").split("?", 1)[0]!);
    if (!entry) return opts.fallback(req, res);
    const values = createContextValues().set(reached, { value: false });
    entry
      .handler(universalRequestFromNodeRequest(req, res, undefined, values))
      .then(async (answer) => {
        if (values.get(reached).value || answer.status === 405 || answer.status === 415) {
          return universalResponseToNodeResponse(answer, res);
        }
        const cause = await connectsError(req, answer);
        const refusal = requestRefused(
          entry.route.method,
          cause.code,
          opts.readMaxBytes,
          cause.rawMessage,
        );
        writeRpcError(req, res, await refuse(entry.route, "connect", headersOf(req), refusal));
      })
      .catch((reason: unknown) => {
        // The client went away: nobody to answer.
        if (ConnectError.from(reason).code === Code.Aborted) return;
        opts.log.error(
          { err: String(reason), rpc: entry.route.method.name },
          "answering a call failed",
        );
      });
  };
}

function implementation(route: Route) {
  return (request: unknown, ctx: HandlerContext) => {
    ctx.values.get(reached).value = true;
    const timeout = ctx.timeoutMs();
    return route.handler({
      service: route.service,
      method: route.method,
      request: request as never,
      signal: ctx.signal,
      deadline: timeout === undefined ? undefined : Date.now() + timeout,
      transport: "connect",
      requestHeader: ctx.requestHeader,
      beginCommit: noDeadline,
    });
  };
}

function headersOf(req: Request): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (typeof value === "string" && !key.startsWith(":")) headers.set(key, value);
  }
  return headers;
}

/** The error connect put in its answer, read back in the caller's protocol. */
async function connectsError(req: Request, answer: UniversalServerResponse): Promise<ConnectError> {
  const unknown = new ConnectError("unreadable refusal", Code.InvalidArgument);
  const contentType = String(req.headers["content-type"] ?? "");
  if (contentType.startsWith("application/grpc-web")) {
    const first = await firstChunk(answer);
    if (!first || first.length < 5 || (first[0]! & trailerFlag) === 0) return unknown;
    return findTrailerError(trailerParse(first.subarray(5))) ?? unknown;
  }
  if (contentType.startsWith("application/grpc")) {
    return (answer.trailer && findTrailerError(answer.trailer)) ?? unknown;
  }
  const body = await firstChunk(answer);
  return body ? errorFromJsonBytes(body, undefined, unknown) : unknown;
}

async function firstChunk(answer: UniversalServerResponse): Promise<Uint8Array | undefined> {
  if (answer.body === undefined) return undefined;
  if (answer.body instanceof Uint8Array) return answer.body;
  for await (const chunk of answer.body) return chunk;
  return undefined;
}
