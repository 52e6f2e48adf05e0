import { fromBinary, toBinary, type Message } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { createCall } from "../../transport/call.js";
import { requestReadOptions } from "../codec.js";
import { rpcErrors } from "../errors.js";
import { refuse, type Route } from "../handlers.js";
import { requestRefused, type Refusal } from "../request_refused.js";
import { stallMs, waitMs, type CallOptions } from "./call_options.js";
import { metadataHeader } from "./metadata.js";
import { readMessages, type Reader } from "./reader.js";
import { readHead } from "./request_head.js";
import { answerMessage, answerStatus } from "./respond.js";
import type { Connection } from "./sessions.js";
import { errorStatus } from "./status.js";

/**
 * One call of a served method: its message read within the budget and
 * server.grpc.timeout, then the chained handler, then the answer. What the
 * transport refuses (a bad grpc-timeout or grpc-encoding, a message over the
 * limit, malformed, late, or without room) goes through the chain as a
 * refusal, as the caller's call, so it is logged and counted like any other
 * and answered with the same code and ErrorInfo as on the HTTP port. The
 * message's room is held until the answer leaves, or the client goes.
 */
export function serveUnary(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  route: Route,
  opts: CallOptions,
  connection: Connection,
): void {
  const { peer } = connection;
  const now = Date.now();
  const requestHeader = metadataHeader(headers);
  let over = false;
  // The handler has the request: its room stays taken until it is done,
  // even if the client goes meanwhile.
  let running = false;
  // Set once reading begins; a call may finish before (a bad header).
  const reading: { reader?: Reader; stall?: NodeJS.Timeout } = {};
  const finish = () => {
    over = true;
    clearTimeout(reading.stall);
    reading.reader?.close();
  };
  // A client that goes before the handler has its request gives its room back at once.
  const gone = () => {
    if (!running) finish();
  };
  stream.once("aborted", gone);
  stream.once("close", gone);
  const refuseWith = (refusal: Refusal, reset = true) => {
    if (over) return;
    finish();
    const error = requestRefused(route.method, refusal, opts.maxRequestBytes, "gzip");
    refuse(route, "grpc", requestHeader, error, peer)
      .then((e) => answerStatus(stream, errorStatus(e), reset))
      .catch(() => stream.destroy());
  };

  const head = readHead(headers, now);
  if (!head.ok) return refuseWith(head.refusal);
  const { deadline } = head;
  reading.stall = setTimeout(() => refuseWith("stalled"), stallMs(opts, deadline, now));
  let message: Uint8Array | undefined;
  reading.reader = readMessages(
    stream,
    {
      budget: opts.budget,
      announced: connection.announced,
      maxRequestBytes: opts.maxRequestBytes,
      gzip: head.gzip,
      keep: true,
      waitMs: () => waitMs(deadline),
    },
    {
      // A second message is refused at its prefix, before it is read.
      begin: () => {
        if (message !== undefined) refuseWith("second_message");
      },
      message: (bytes) => (message = bytes),
      end: () => {
        clearTimeout(reading.stall);
        if (message === undefined) return refuseWith("malformed", false);
        run(message);
      },
      fail: (why) => refuseWith(why),
    },
  );

  const run = (bytes: Uint8Array) => {
    let request: Message;
    try {
      request = fromBinary(route.method.input, bytes, requestReadOptions);
    } catch {
      return refuseWith("malformed", false);
    }
    running = true;
    route
      .handler(
        createCall({
          service: route.service,
          method: route.method,
          request,
          deadline,
          transport: "grpc",
          requestHeader,
          peer,
        }),
      )
      .then(
        (response) => {
          finish();
          answerMessage(stream, toBinary(route.method.output, response));
        },
        (err: unknown) => {
          finish();
          const error = err instanceof ConnectError ? err : rpcErrors.internal(route.service);
          answerStatus(stream, errorStatus(error));
        },
      )
      // An answer that cannot be written (the stream went in between): the call is over.
      .catch(() => stream.destroy());
  };
}
