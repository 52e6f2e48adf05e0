import { fromBinary, toBinary, type Message } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import type { Due } from "../../pkg/timer/due.js";
import { createCall, type RequestHeader } from "../../transport/call.js";
import { requestReadOptions } from "../codec.js";
import { rpcErrors } from "../errors.js";
import { refuse, type Route } from "../handlers.js";
import { requestRefused, type Refusal } from "../request_refused.js";
import { stallMs, type CallOptions } from "./call_options.js";
import { metadataHeader } from "./metadata.js";
import { readMessages, type MessageSink, type ReadFailure, type Reader } from "./reader.js";
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
  const now = Date.now();
  const call = new UnaryCall(stream, metadataHeader(headers), route, opts, connection);
  const head = readHead(headers, now);
  if (!head.ok) return call.refuseWith(head.refusal);
  call.read(head.deadline, head.gzip, now);
}

// The call's state in one object rather than a closure per step: the stream
// holds its listeners until it is gone, and node:http2's streams often
// outlive a young-generation collection, promoting what they hold.
class UnaryCall implements MessageSink, Due {
  private over = false;
  // The handler has the request: its room stays taken until it is done,
  // even if the client goes meanwhile.
  private running = false;
  private reader: Reader | undefined = undefined;
  private received: Uint8Array | undefined = undefined;
  private deadline: number | undefined = undefined;
  // When the request must have arrived (performance.now()), in the port's stall queue.
  dueAt = 0;
  slot = -1;
  private readonly gone: () => void;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly requestHeader: RequestHeader,
    private readonly route: Route,
    private readonly opts: CallOptions,
    private readonly connection: Connection,
  ) {
    // A client that goes before the handler has its request gives its room back at once.
    this.gone = () => {
      if (!this.running) this.finish();
    };
    stream.on("aborted", this.gone);
    stream.on("close", this.gone);
  }

  read(deadline: number | undefined, gzip: boolean, now: number): void {
    const { opts } = this;
    this.deadline = deadline;
    this.dueAt = performance.now() + stallMs(opts, deadline, now);
    opts.stalls.add(this);
    this.reader = readMessages(
      this.stream,
      {
        budget: opts.budget,
        announced: this.connection.announced,
        maxRequestBytes: opts.maxRequestBytes,
        gzip,
        keep: true,
        deadline,
      },
      this,
    );
  }

  /** The request did not arrive in time. */
  fire(): void {
    this.refuseWith("stalled");
  }

  // A second message is refused at its prefix, before it is read.
  begin(): void {
    if (this.received !== undefined) this.refuseWith("second_message");
  }

  message(bytes: Uint8Array): void {
    this.received = bytes;
  }

  end(): void {
    this.opts.stalls.delete(this);
    if (this.received === undefined) return this.refuseWith("malformed", false);
    this.run(this.received);
  }

  fail(why: ReadFailure): void {
    this.refuseWith(why);
  }

  refuseWith(refusal: Refusal, reset = true): void {
    if (this.over) return;
    this.finish();
    const { route, stream } = this;
    const error = requestRefused(route.method, refusal, this.opts.maxRequestBytes, "gzip");
    refuse(route, "grpc", this.requestHeader, error, this.connection.peer)
      .then((e) => answerStatus(stream, errorStatus(e), reset))
      .catch(() => stream.destroy());
  }

  private finish(): void {
    if (this.over) return;
    this.over = true;
    this.opts.stalls.delete(this);
    this.reader?.close();
    // Nothing of the call stays reachable from the stream once it is over.
    this.stream.off("aborted", this.gone);
    this.stream.off("close", this.gone);
  }

  private run(bytes: Uint8Array): void {
    const { route, stream } = this;
    let request: Message;
    try {
      request = fromBinary(route.method.input, bytes, requestReadOptions);
    } catch {
      return this.refuseWith("malformed", false);
    }
    this.running = true;
    route
      .handler(
        createCall({
          service: route.service,
          method: route.method,
          request,
          deadline: this.deadline,
          transport: "grpc",
          requestHeader: this.requestHeader,
          peer: this.connection.peer,
        }),
      )
      // Each handler catches what it throws: an answer that cannot be written
      // (the stream went in between) ends the call, and no promise more is made.
      .then(
        (response) => {
          try {
            this.finish();
            answerMessage(stream, toBinary(route.method.output, response));
          } catch {
            stream.destroy();
          }
        },
        (err: unknown) => {
          try {
            this.finish();
            const error = err instanceof ConnectError ? err : rpcErrors.internal(route.service);
            answerStatus(stream, errorStatus(error));
          } catch {
            stream.destroy();
          }
        },
      );
  }
}
