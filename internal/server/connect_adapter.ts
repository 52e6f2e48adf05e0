import { brotliDecompressSync, gunzipSync } from "node:zlib";
import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createConnectRouter,
  createContextKey,
  createContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import {
  codeToHttpStatus,
  parseTimeout as parseConnectTimeout,
} from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse } from "@connectrpc/connect/protocol-grpc-web";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "../pkg/log/logger.js";
import { createCall } from "../transport/call.js";
import { requestRefused, type Refusal } from "./request_refused.js";
import type { ByteBudget } from "../pkg/limit/queue.js";
import { requestReadOptions } from "./codec.js";
import { refuse, type Route } from "./handlers.js";
import { headersOf, type Request, type Response } from "./http_routes.js";
import { writeRpcError } from "./rpc_error_response.js";
import { judgeLength, payChunk, type BodyHold } from "./body_budget.js";

type NodeHandler = (req: Request, res: Response) => void;

export interface ConnectAdapterOptions {
  routes: Route[];
  /** Largest request message accepted, in bytes. */
  readMaxBytes: number;
  /** Request bytes held at once across all calls of the port. */
  inflight: ByteBudget;
  /** Serves every path that is not one of the routes. */
  fallback: NodeHandler;
  log: Logger;
}

// Set by our implementation when connect hands it a call: a unary call whose
// handler never ran was refused by connect itself.
const reached = createContextKey({ value: false });
// The client's address, which connect's handler context does not carry.
const peer = createContextKey<string | undefined>(undefined);

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
    binaryOptions: requestReadOptions,
    acceptCompression: compressions,
    // connect ignores unknown JSON fields and enum names by default: a
    // misspelt "view" would then read as unset, that is FULL.
    jsonOptions: { ignoreUnknownFields: false },
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
    // Read now: once the request is over, HTTP/2's req.socket throws.
    const address = req.socket.remoteAddress;
    const values = createContextValues().set(reached, { value: false }).set(peer, address);
    const held = { bytes: 0, over: false };
    res.once("close", () => opts.inflight.give(held.bytes));
    // A call connect refused before our handler ran, answered as the gRPC port would.
    const refused = async (reason: Refusal) => {
      const refusal = requestRefused(entry.route.method, reason, opts.readMaxBytes);
      const err = await refuse(entry.route, "connect", headersOf(req), refusal, address);
      writeRpcError(req, res, err, reason === "bad_compression" ? acceptedEncodings(req) : {});
    };
    const failed = (reason: unknown) => {
      // The client went away: nobody to answer.
      if (ConnectError.from(reason).code === Code.Aborted) return;
      opts.log.error(
        { err: String(reason), rpc: entry.route.method.name },
        "answering a call failed",
      );
    };
    // A gRPC or gRPC-Web body is its message in a 5-byte envelope.
    const judged = judgeLength(req, opts.inflight, opts.readMaxBytes + 5);
    if (judged === "busy" || judged === "too_large") return void refused(judged).catch(failed);
    const received = universalRequestFromNodeRequest(req, res, undefined, values);
    const body = withinBudget(received.body as AsyncIterable<Uint8Array>, opts.inflight, held);
    const request = { ...received, body };
    entry
      .handler(request)
      .then(async (answer) => {
        if (values.get(reached).value || answer.status === 405 || answer.status === 415) {
          return universalResponseToNodeResponse(answer, res);
        }
        // The client went away mid-request: nobody to answer, nothing to count.
        if (request.signal.aborted || res.destroyed) return;
        await refused(held.over ? "busy" : await refusalOf(req, answer));
      })
      .catch(failed);
  };
}

function implementation(route: Route) {
  return (request: unknown, ctx: HandlerContext) => {
    ctx.values.get(reached).value = true;
    const timeout = ctx.timeoutMs();
    return route.handler(
      createCall({
        service: route.service,
        method: route.method,
        request: request as never,
        deadline: timeout === undefined ? undefined : Date.now() + timeout,
        transport: "connect",
        requestHeader: ctx.requestHeader,
        peer: ctx.values.get(peer),
      }),
    );
  };
}

// The request body as connect reads it, paid as it arrives (given back when
// the answer is done): past the budget, the read fails and the call is
// refused as busy.
async function* withinBudget(
  body: AsyncIterable<Uint8Array>,
  budget: ByteBudget,
  held: BodyHold & { over: boolean },
): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    if (!payChunk(budget, held, chunk.byteLength)) {
      held.over = true;
      throw new ConnectError("request bytes in flight over budget", Code.ResourceExhausted);
    }
    yield chunk;
  }
}

const compressions = [compressionGzip, compressionBrotli];
const supportedEncodings = new Set(["identity", ...compressions.map((c) => c.name)]);

/**
 * What a refused compression's answer names, in the header the request's
 * protocol reads: the compressions the port takes. (connect used to leave
 * this header on its answer; since 2.3 it keeps protocol headers out of an
 * error's metadata, that one included.)
 */
function acceptedEncodings(req: Request): Record<string, string> {
  const grpcFamily = String(req.headers["content-type"] ?? "").startsWith("application/grpc");
  const header = grpcFamily ? "grpc-accept-encoding" : "accept-encoding";
  return { [header]: compressions.map((c) => c.name).join(",") };
}

/**
 * Which refusal connect's answer stands for. The request's own headers say
 * whether its timeout or its compression was refused; only "too large" needs
 * connect's code: the status line (Connect), the trailers (gRPC) or the
 * trailer frame (gRPC-Web). Never reads connect's message, never throws.
 */
async function refusalOf(req: Request, answer: UniversalServerResponse): Promise<Refusal> {
  const contentType = String(req.headers["content-type"] ?? "");
  const grpcFamily = contentType.startsWith("application/grpc");
  const timeout = req.headers[grpcFamily ? "grpc-timeout" : "connect-timeout-ms"];
  if (typeof timeout === "string") {
    const parse = grpcFamily ? parseGrpcTimeout : parseConnectTimeout;
    if (parse(timeout, Number.MAX_SAFE_INTEGER).error) return "bad_timeout";
  }
  const encoding = req.headers[grpcFamily ? "grpc-encoding" : "content-encoding"];
  if (typeof encoding === "string" && !supportedEncodings.has(encoding)) return "bad_compression";
  const code = await statusCode(contentType, answer).catch(() => undefined);
  return code === Code.ResourceExhausted ? "too_large" : "malformed";
}

async function statusCode(
  contentType: string,
  answer: UniversalServerResponse,
): Promise<Code | undefined> {
  if (!contentType.startsWith("application/grpc")) {
    return answer.status === codeToHttpStatus(Code.ResourceExhausted)
      ? Code.ResourceExhausted
      : undefined;
  }
  if (!contentType.startsWith("application/grpc-web")) {
    return Number(answer.trailer?.get("grpc-status")) as Code;
  }
  // gRPC-Web carries its trailers in the body's last frame, compressed when
  // the client accepts it and they are long.
  const frame = await firstChunk(answer);
  if (!frame || frame.length < 5 || (frame[0]! & trailerFlag) === 0) return undefined;
  let data = Buffer.from(frame.subarray(5));
  if (frame[0]! & 0x01) {
    const encoding = answer.header?.get("grpc-encoding");
    data = encoding === "br" ? brotliDecompressSync(data) : gunzipSync(data);
  }
  return Number(trailerParse(data).get("grpc-status")) as Code;
}

async function firstChunk(answer: UniversalServerResponse): Promise<Uint8Array | undefined> {
  if (answer.body === undefined) return undefined;
  if (answer.body instanceof Uint8Array) return answer.body;
  for await (const chunk of answer.body) return chunk;
  return undefined;
}
