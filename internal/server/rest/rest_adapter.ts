import type { JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-connect";
import type { ByteBudget } from "../../pkg/limit/queue.js";
import type { Logger } from "../../pkg/log/logger.js";
import { createCall } from "../../transport/call.js";
import { serviceError } from "../errors.js";
import { refuse, type Route } from "../handlers.js";
import { headersOf, type Request, type Response } from "../http_routes.js";
import { requestRefused, type Refusal } from "../request_refused.js";
import { writeRpcError } from "../rpc_error_response.js";
import { judgeLength, payChunk, type BodyHold } from "../body_budget.js";
import { restBindings, type RestBinding } from "./bindings.js";
import { matchPath } from "./path_template.js";
import { requestMessage, responseJson, TranscodeError } from "./request.js";

type NodeHandler = (req: Request, res: Response) => void;

export interface RestAdapterOptions {
  routes: Route[];
  /** Largest request body accepted, in bytes. */
  readMaxBytes: number;
  /** Request bytes held at once across all calls of the port. */
  inflight: ByteBudget;
  /** Serves every request no route matches. */
  fallback: NodeHandler;
  log: Logger;
}

/**
 * The methods' google.api.http routes on the HTTP port, as Kratos serves
 * them: JSON in and out, through the same handlers and middleware chain as
 * the other transports (transport "rest"). Errors are Connect's JSON error
 * (code, message, details with the ErrorInfo) with its HTTP status. A path a
 * route knows under another HTTP method answers 405 with Allow.
 */
export function restAdapter(opts: RestAdapterOptions): NodeHandler {
  const bindings = restBindings(opts.routes);
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://rest");
    const matched = bindings.flatMap((b) => {
      const vars = matchPath(b.template, url.pathname);
      return vars ? [{ b, vars }] : [];
    });
    if (matched.length === 0) return opts.fallback(req, res);
    const hit = matched.find((m) => m.b.httpMethod === req.method);
    if (!hit) {
      const allow = [...new Set(matched.map((m) => m.b.httpMethod))].join(", ");
      res.writeHead(405, { allow, "content-type": "application/json" });
      res.end(
        JSON.stringify({
          code: "unimplemented",
          message: `${req.method} not allowed here: ${allow}`,
        }),
      );
      return;
    }
    serve(opts, hit.b, hit.vars, url.searchParams, req, res).catch((err: unknown) => {
      opts.log.error({ err: String(err), rpc: hit.b.route.method.name }, "answering a call failed");
      if (!res.headersSent)
        writeRpcError(req, res, new ConnectError("internal error", Code.Internal));
    });
  };
}

async function serve(
  opts: RestAdapterOptions,
  b: RestBinding,
  vars: Record<string, string>,
  query: URLSearchParams,
  req: Request,
  res: Response,
): Promise<void> {
  // Read now: once the request is over, HTTP/2's req.socket throws.
  const peer = req.socket.remoteAddress;
  const headers = headersOf(req);
  const refused = async (error: ConnectError) =>
    writeRpcError(req, res, await refuse(b.route, "rest", headers, error, peer));
  const refusal = (r: Refusal) => refused(requestRefused(b.route.method, r, opts.readMaxBytes));

  const timeout = headers.get("connect-timeout-ms");
  const parsed = timeout === null ? undefined : parseTimeout(timeout, Number.MAX_SAFE_INTEGER);
  if (parsed?.error) return refusal("bad_timeout");
  const encoding = headers.get("content-encoding");
  if (encoding !== null && encoding !== "identity")
    return refused(
      serviceError(
        b.route.service,
        Code.Unimplemented,
        "NOT_IMPLEMENTED",
        "the JSON routes take an uncompressed body",
      ),
    );
  const type = headers.get("content-type");
  const held = { bytes: 0 };
  res.once("close", () => opts.inflight.give(held.bytes));
  const read = await readBody(req, opts, held);
  if (typeof read === "string") return refusal(read);
  let body: JsonValue | undefined;
  if (read.length > 0) {
    if (type !== null && !/^application\/json\s*(;|$)/i.test(type))
      return refused(
        serviceError(
          b.route.service,
          Code.InvalidArgument,
          "VALIDATION_FAILED",
          "the body must be application/json",
          {
            field: "body",
          },
        ),
      );
    try {
      body = JSON.parse(read.toString("utf8")) as JsonValue;
    } catch {
      return refusal("malformed");
    }
  }
  let request;
  try {
    request = requestMessage(b, vars, query, body);
  } catch (err) {
    if (!(err instanceof TranscodeError)) throw err;
    return refused(
      serviceError(b.route.service, Code.InvalidArgument, "VALIDATION_FAILED", err.message, {
        field: err.field,
      }),
    );
  }
  const call = createCall({
    service: b.route.service,
    method: b.route.method,
    request,
    deadline: parsed?.timeoutMs === undefined ? undefined : Date.now() + parsed.timeoutMs,
    transport: "rest",
    requestHeader: headers,
    peer,
  });
  let response;
  try {
    response = await b.route.handler(call);
  } catch (err) {
    // The chain answers every failure as a ConnectError with its ErrorInfo.
    return writeRpcError(req, res, ConnectError.from(err));
  }
  if (res.destroyed) return;
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify(responseJson(b, response)));
}

/**
 * The whole body, paid from the port's budget as it arrives (given back when
 * the answer is done), or why it was refused: by its announced length before
 * any of it is read, where it has one.
 */
async function readBody(
  req: Request,
  opts: RestAdapterOptions,
  held: BodyHold,
): Promise<Buffer | Refusal> {
  const judged = judgeLength(req, opts.inflight, opts.readMaxBytes);
  if (judged === "busy" || judged === "too_large") return judged;
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > opts.readMaxBytes) return "too_large";
    if (!payChunk(opts.inflight, held, chunk.length)) return "busy";
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length);
}
