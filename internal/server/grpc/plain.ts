import { fromBinary, toBinary, type DescMessage, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { requestReadOptions } from "../codec.js";
import { stallMs, type CallOptions } from "./call_options.js";
import { readMessages, type ReadFailure, type Reader } from "./reader.js";
import { readHead } from "./request_head.js";
import { answerStatus, sendMessage } from "./respond.js";
import type { Connection } from "./sessions.js";
import { errorStatus, OK_STATUS } from "./status.js";

/** Where a plain method sends its answers. */
export interface Responses {
  send(message: Message): void;
  /** Ends the call: status 0, or the error. */
  end(error?: ConnectError): void;
}

/** What a plain method is told of its call. */
export interface Requests {
  message(request: Message): void;
  /** The client ended its request. */
  end(): void;
  /** The call is over, answered or not. */
  close(): void;
}

/**
 * A method served without the chain (grpc.health.v1, reflection): no
 * caller, no ErrorInfo domain, any shape of stream. Its messages are read
 * within the same budget and timeout as every other call's.
 */
export interface PlainMethod {
  input: DescMessage;
  output: DescMessage;
  open(responses: Responses): Requests;
}

/**
 * Serves one call of a plain method. A message must arrive within
 * server.grpc.timeout of the call's start, and each later one within it of
 * its first bytes: a stream may wait for its next request as long as it
 * likes, holding no room.
 */
export function servePlain(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  method: PlainMethod,
  opts: CallOptions,
  connection: Connection,
): void {
  const now = Date.now();
  let over = false;
  let stall: NodeJS.Timeout | undefined;
  // One drain listener at a time, however many answers wait behind it.
  let draining = false;
  // Set once reading begins; a call may end before (a bad header).
  const reading: { reader?: Reader } = {};
  const responses: Responses = {
    send: (message) => {
      if (over || sendMessage(stream, toBinary(method.output, message))) return;
      // A client not reading its answers gets no more of them: its requests
      // wait, unread, until it has taken what was sent.
      reading.reader?.holdBack();
      if (draining) return;
      draining = true;
      stream.once("drain", () => {
        draining = false;
        reading.reader?.release();
      });
    },
    end: (error) => {
      if (over) return;
      close();
      answerStatus(stream, error ? errorStatus(error) : OK_STATUS, true);
    },
  };
  const requests = method.open(responses);
  const close = () => {
    if (over) return;
    over = true;
    clearTimeout(stall);
    reading.reader?.close();
    requests.close();
  };
  stream.once("aborted", close);
  stream.once("close", close);

  const head = readHead(headers, now);
  if (!head.ok) return responses.end(plainError(head.refusal));
  const { deadline } = head;
  const arm = (ms: number) => {
    clearTimeout(stall);
    stall = setTimeout(() => responses.end(plainError("stalled")), ms);
  };
  arm(stallMs(opts, deadline, now));
  reading.reader = readMessages(
    stream,
    {
      budget: opts.budget,
      announced: connection.announced,
      maxRequestBytes: opts.maxRequestBytes,
      gzip: head.gzip,
      keep: false,
      deadline,
    },
    {
      begin: () => arm(stallMs(opts, deadline, Date.now())),
      message: (bytes) => {
        clearTimeout(stall);
        let request: Message;
        try {
          request = fromBinary(method.input, bytes, requestReadOptions);
        } catch {
          return responses.end(plainError("malformed"));
        }
        requests.message(request);
      },
      end: () => {
        clearTimeout(stall);
        requests.end();
      },
      fail: (why) => responses.end(plainError(why)),
    },
  );
}

/** Refusals without a domain: these services have no ErrorInfo of their own. */
function plainError(why: ReadFailure | "bad_timeout" | "bad_compression" | "stalled") {
  switch (why) {
    case "too_large":
      return new ConnectError("request message too large", Code.ResourceExhausted);
    case "busy":
      return new ConnectError(
        "server busy: too many request bytes in flight; retry",
        Code.ResourceExhausted,
      );
    case "stalled":
      return new ConnectError("request not received in time", Code.DeadlineExceeded);
    case "bad_timeout":
      return new ConnectError("invalid timeout header", Code.InvalidArgument);
    case "bad_compression":
      return new ConnectError("request compression not supported (use gzip)", Code.Unimplemented);
    case "malformed":
      return new ConnectError("malformed request message", Code.InvalidArgument);
  }
}
