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

/**
 * The stream can still be written to. A client's RST_STREAM closes a stream
 * at once but destroys it only once what it sent has been read, and node
 * throws on a write to a closed stream: both are checked.
 */
const open = (stream: ServerHttp2Stream) => !stream.destroyed && !stream.closed;

/** The stream can still be answered (open, no answer begun). */
export const answerable = (stream: ServerHttp2Stream) => open(stream) && !stream.headersSent;

/** A unary call's answer: headers, the message, trailers with status 0. */
export function answerMessage(stream: ServerHttp2Stream, message: Uint8Array): void {
  if (!answerable(stream)) return;
  stream.respond(HEADERS, WAIT_FOR_TRAILERS);
  // Emitted once per stream: one listener shared by every call, rather than
  // a closure per call that the stream would keep.
  stream.on("wantTrailers", sendOk);
  stream.end(frame(message));
}

const WAIT_FOR_TRAILERS = Object.freeze({ waitForTrailers: true });

function sendOk(this: ServerHttp2Stream): void {
  if (open(this)) this.sendTrailers(OK_STATUS);
}

/**
 * A status alone, in the headers (trailers-only), when nothing was answered
 * yet; in the trailers after the messages sent otherwise. With `reset`, a
 * client still sending is told to stop (RST_STREAM NO_ERROR, once the
 * status has gone): what it sends is not going to be read.
 */
export function answerStatus(stream: ServerHttp2Stream, status: StatusFields, reset = false): void {
  if (!open(stream)) return;
  const stop = () => {
    if (reset && !stream.readableEnded) {
      setImmediate(() => {
        if (open(stream)) stream.close(constants.NGHTTP2_NO_ERROR);
      });
    }
  };
  if (!stream.headersSent) {
    stream.respond({ ...HEADERS, ...status }, { endStream: true });
    stop();
  } else if (!stream.writableEnded) {
    stream.once("wantTrailers", () => {
      if (!open(stream)) return;
      stream.sendTrailers(status);
      stop();
    });
    stream.end();
  }
}

/**
 * One message of a stream of answers (headers first, once); false when the
 * client is not reading them fast enough and the sender should wait for
 * `drain`. Ended by answerStatus.
 */
export function sendMessage(stream: ServerHttp2Stream, message: Uint8Array): boolean {
  if (!open(stream) || stream.writableEnded) return true;
  if (!stream.headersSent) stream.respond(HEADERS, WAIT_FOR_TRAILERS);
  return stream.write(frame(message));
}

/** An answer that is not gRPC at all: an HTTP status, for a request that is not gRPC. */
export function answerHttp(stream: ServerHttp2Stream, status: number): void {
  if (!answerable(stream)) return;
  stream.respond({ ":status": status }, { endStream: true });
  if (!stream.readableEnded) stream.close(constants.NGHTTP2_NO_ERROR);
}
