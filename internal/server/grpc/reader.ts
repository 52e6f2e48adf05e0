import type { ServerHttp2Stream } from "node:http2";
import { gunzip } from "node:zlib";
import type { ByteBudget } from "../../pkg/limit/queue.js";
import { PREFIX_BYTES } from "./frames.js";

/** Why a request's messages could not be read. */
export type ReadFailure = "too_large" | "malformed" | "busy";

export interface ReaderOptions {
  budget: ByteBudget;
  /**
   * What the client's address may have announced in prefixes and not yet
   * sent. A message's room is taken at its prefix, before its body comes: a
   * client sending prefixes alone would otherwise hold the whole budget,
   * everyone else's too, for server.grpc.timeout. Shared by its connections,
   * a part of the budget: past it, its next message waits for its earlier
   * ones' bytes to arrive.
   */
  announced: ByteBudget;
  maxRequestBytes: number;
  /** The request's grpc-encoding is gzip (else only uncompressed messages are valid). */
  gzip: boolean;
  /**
   * A unary call keeps its message's room until the call ends (`close`); a
   * stream gives each message's back once its handler has taken it.
   */
  keep: boolean;
  /** How long a message may wait for room now (the call's deadline, at most 10 s). */
  waitMs(): number;
}

export interface MessageSink {
  /** A message's prefix was read: its body is on its way. */
  begin(): void;
  /** A whole message, decompressed. */
  message(bytes: Uint8Array): void;
  /** The client ended its request, between messages (room kept stays held until `close`). */
  end(): void;
  /** Reading stopped: what it held is given back already. */
  fail(why: ReadFailure): void;
}

export interface Reader {
  /** Stops reading and gives back every byte of room it holds. Idempotent. */
  close(): void;
  /** Reads no further message until `release` (the answers are not being read). */
  holdBack(): void;
  release(): void;
}

/**
 * Reads a request's length-prefixed messages. Each message's room in the
 * budget is taken once its prefix has announced its length, before its body
 * is read: one that does not fit waits with the stream paused (HTTP/2 flow
 * control holds the client back), and one over max_request_bytes is refused
 * without reading the rest. A message that arrives in one chunk is handed on
 * as a view of it; a longer one is copied once into a buffer of its length.
 * A compressed message takes room for max_request_bytes more while it is
 * inflated, and inflates to at most that.
 */
export function readMessages(
  stream: ServerHttp2Stream,
  opts: ReaderOptions,
  sink: MessageSink,
): Reader {
  const { budget, announced, maxRequestBytes: max } = opts;
  const prefix = Buffer.allocUnsafe(PREFIX_BYTES);
  let reading: "prefix" | "body" = "prefix";
  let prefixFilled = 0;
  let expected = 0;
  let body: Buffer | undefined;
  let bodyFilled = 0;
  let compressed = false;
  // Room this reader holds, and the current message's part of it.
  let held = 0;
  let need = 0;
  // Of the current message's announced length, what has not arrived yet.
  let unsent = 0;
  const arrived = (n: number) => {
    const k = Math.min(n, unsent);
    unsent -= k;
    announced.give(k);
  };
  let closed = false;
  // Set while the stream is paused: waiting for room, or inflating.
  let parked: { chunk: Buffer; offset: number } | undefined;
  let waiting: AbortController | undefined;

  // Set while the handler does not want another message yet.
  let heldBack = false;
  let inflating = false;
  const close = () => {
    if (closed) return;
    closed = true;
    waiting?.abort();
    stream.off("data", onData);
    stream.off("end", onEnd);
    budget.give(held);
    held = 0;
    arrived(unsent);
    // What is still buffered is not going to be read: let it drain, so that a
    // stream the client has reset meanwhile ends and closes.
    stream.resume();
  };
  const fail = (why: ReadFailure) => {
    close();
    sink.fail(why);
  };
  // The request's end came while a message was waiting or inflating.
  let endedMeanwhile = false;
  const resume = () => {
    const rest = parked;
    parked = undefined;
    if (rest) consume(rest.chunk, rest.offset);
    if (closed || parked) return;
    if (endedMeanwhile) onEnd();
    else if (!heldBack) stream.resume();
  };
  const park = (chunk: Buffer, offset: number) => {
    parked = { chunk, offset };
    stream.pause();
  };

  const deliver = (message: Uint8Array) => {
    if (!opts.keep) {
      budget.give(need);
      held -= need;
    }
    need = 0;
    sink.message(message);
  };
  const complete = (chunk: Buffer, offset: number): boolean => {
    const message = body!;
    body = undefined;
    if (!compressed) {
      deliver(message);
      return true;
    }
    park(chunk, offset);
    inflating = true;
    gunzip(message, { maxOutputLength: max }, (err, inflated) => {
      inflating = false;
      if (closed) return;
      if (err) return fail(err instanceof RangeError ? "too_large" : "malformed");
      // The compressed form is garbage now: the room kept is the inflated size.
      const kept = inflated.length;
      budget.give(need - kept);
      held -= need - kept;
      need = kept;
      deliver(inflated);
      if (!closed) resume();
    });
    return false;
  };
  // Takes the room for the message whose prefix was just read (its length
  // in what its address may announce, then its room in the budget), at once
  // or after a wait (the stream paused); false when it is waiting.
  const admit = (chunk: Buffer, offset: number, length: number): boolean => {
    need = length + (compressed ? max : 0);
    // An empty message needs no room: it waits behind nobody.
    if (need === 0) return admitted(0);
    if (announced.take(length)) {
      if (budget.take(need)) return admitted(length);
      announced.give(length);
    }
    park(chunk, offset);
    waiting = new AbortController();
    void reserve(length, waiting.signal).then((ok) => {
      waiting = undefined;
      if (closed) {
        if (ok) {
          budget.give(need);
          announced.give(length);
        }
        return;
      }
      if (!ok) return fail("busy");
      admitted(length);
      startBody(length);
      resume();
    });
    return false;
  };
  const admitted = (length: number) => {
    held += need;
    unsent = length;
    return true;
  };
  // One wait, however it is shared between the two.
  const reserve = async (length: number, signal: AbortSignal) => {
    const until = Date.now() + opts.waitMs();
    if (!(await announced.reserve(length, until - Date.now(), signal))) return false;
    if (await budget.reserve(need, until - Date.now(), signal)) return true;
    announced.give(length);
    return false;
  };
  const startBody = (length: number) => {
    reading = "body";
    expected = length;
    body = undefined;
    bodyFilled = 0;
  };

  function consume(chunk: Buffer, offset: number): void {
    while (!closed) {
      if (reading === "prefix") {
        if (offset >= chunk.length) return;
        if (heldBack) return park(chunk, offset);
        const n = Math.min(PREFIX_BYTES - prefixFilled, chunk.length - offset);
        chunk.copy(prefix, prefixFilled, offset, offset + n);
        prefixFilled += n;
        offset += n;
        if (prefixFilled < PREFIX_BYTES) return;
        prefixFilled = 0;
        const flag = prefix[0]!;
        const length = prefix.readUInt32BE(1);
        // A compressed message needs a grpc-encoding saying how.
        if (flag > 1 || (flag === 1 && !opts.gzip)) return fail("malformed");
        if (length > max) return fail("too_large");
        compressed = flag === 1;
        sink.begin();
        if (closed || !admit(chunk, offset, length)) return;
        startBody(length);
      }
      if (expected > 0 && offset >= chunk.length) return;
      if (body === undefined) {
        if (chunk.length - offset >= expected) {
          // The whole body in this chunk: a view, no copy.
          body = chunk.subarray(offset, offset + expected);
          bodyFilled = expected;
          offset += expected;
          arrived(expected);
        } else {
          body = Buffer.allocUnsafe(expected);
        }
      }
      if (bodyFilled < expected) {
        const n = Math.min(expected - bodyFilled, chunk.length - offset);
        chunk.copy(body, bodyFilled, offset, offset + n);
        bodyFilled += n;
        offset += n;
        arrived(n);
        if (bodyFilled < expected) return;
      }
      reading = "prefix";
      if (!complete(chunk, offset)) return;
    }
  }

  const onData = (chunk: Buffer) => consume(chunk, 0);
  const onEnd = () => {
    if (closed) return;
    // All data was handed over, but part of it is parked: the end comes after it.
    if (parked) {
      endedMeanwhile = true;
      return;
    }
    // Ended inside a message: a truncated request.
    if (prefixFilled > 0 || reading === "body") return fail("malformed");
    // What a unary call's message holds stays held until `close`.
    stream.off("data", onData);
    stream.off("end", onEnd);
    sink.end();
  };
  stream.on("data", onData);
  stream.on("end", onEnd);
  return {
    close,
    holdBack: () => {
      heldBack = true;
    },
    release: () => {
      if (!heldBack) return;
      heldBack = false;
      if (!closed && !waiting && !inflating) resume();
    },
  };
}
