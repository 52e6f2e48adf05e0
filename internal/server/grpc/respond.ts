import { constants, type ServerHttp2Stream } from "node:http2";
import { frame } from "./frames.js";
import { OK_STATUS, type StatusFields } from "./status.js";

// The headers of every answer. Requests may come gzip-compressed; answers
// go uncompressed (small, and compressing them costs more than it saves).
const HEADERS = {
  ":status": 200,
  "content-type": "application/grpc+proto",
  "grpc-accept-encoding": "identity,gzip",
} as const;

/** The stream can still be answered (not reset by the client, no answer begun). */
export const answerable = (stream: ServerHttp2Stream) => !stream.destroyed && !stream.headersSent;

/** A unary call's answer: headers, the message, trailers with status 0. */
export function answerMessage(stream: ServerHttp2Stream, message: Uint8Array): void {
  if (!answerable(stream)) return;
  stream.respond(HEADERS, { waitForTrailers: true });
  stream.once("wantTrailers", () => stream.sendTrailers(OK_STATUS));
  stream.end(frame(message));
}

/**
 * A status alone, in the headers (trailers-only), when nothing was answered
 * yet; in the trailers after the messages sent otherwise. With `reset`, a
 * client still sending is told to stop (RST_STREAM NO_ERROR, after the
 * status): what it sends is not going to be read.
 */
export function answerStatus(stream: ServerHttp2Stream, status: StatusFields, reset = false): void {
  if (stream.destroyed) return;
  if (!stream.headersSent) {
    stream.respond({ ...HEADERS, ...status }, { endStream: true });
  } else if (!stream.writableEnded) {
    stream.once("wantTrailers", () => stream.sendTrailers(status));
    stream.end();
  }
  if (reset && !stream.readableEnded) {
    setImmediate(() => {
      if (!stream.destroyed) stream.close(constants.NGHTTP2_NO_ERROR);
    });
  }
}

/** A stream of answers: headers once, then messages; ended by answerStatus. */
export function sendMessage(stream: ServerHttp2Stream, message: Uint8Array): void {
  if (stream.destroyed || stream.writableEnded) return;
  if (!stream.headersSent) stream.respond(HEADERS, { waitForTrailers: true });
  stream.write(frame(message));
}

/** An answer that is not gRPC at all: an HTTP status, for a request that is not gRPC. */
export function answerHttp(stream: ServerHttp2Stream, status: number): void {
  if (!answerable(stream)) return;
  stream.respond({ ":status": status }, { endStream: true });
  if (!stream.readableEnded) stream.close(constants.NGHTTP2_NO_ERROR);
}
