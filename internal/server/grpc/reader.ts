import type { ServerHttp2Stream } from "node:http2";
import { gunzip } from "node:zlib";
import type { ByteBudget } from "../../pkg/limit/queue.js";
import { waitMs } from "./call_options.js";
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
  /** The call's deadline (ms since the epoch): a message waits for room until then, at most 10 s. */
  deadline: number | undefined;
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
  return new MessageReader(stream, opts, sink);
}

// One object per call with its state in fields, not a closure per step: the
// stream keeps its listeners, and what it keeps is promoted with it when it
// outlives a young-generation collection (node:http2's streams often do).
class MessageReader implements Reader {
  private reading: "prefix" | "body" = "prefix";
  // The prefix as it arrives: its bytes so far, the flag and the length read from them.
  private prefixFilled = 0;
  private flag = 0;
  private length = 0;
  private expected = 0;
  private body: Buffer | undefined = undefined;
  private bodyFilled = 0;
  private compressed = false;
  // Room this reader holds, and the current message's part of it.
  private held = 0;
  private need = 0;
  // Of the current message's announced length, what has not arrived yet.
  private unsent = 0;
  private closed = false;
  // Set while the stream is paused: waiting for room, or inflating.
  private parkedChunk: Buffer | undefined = undefined;
  private parkedOffset = 0;
  private waiting: AbortController | undefined = undefined;
  // Set while the handler does not want another message yet.
  private heldBack = false;
  private inflating = false;
  // The request's end came while a message was waiting or inflating.
  private endedMeanwhile = false;
  private readonly onData: (chunk: Buffer) => void;
  private readonly onEnd: () => void;

  constructor(
    private readonly stream: ServerHttp2Stream,
    private readonly opts: ReaderOptions,
    private readonly sink: MessageSink,
  ) {
    this.onData = (chunk) => this.consume(chunk, 0);
    this.onEnd = () => this.ended();
    stream.on("data", this.onData);
    stream.on("end", this.onEnd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.waiting?.abort();
    this.stream.off("data", this.onData);
    this.stream.off("end", this.onEnd);
    this.opts.budget.give(this.held);
    this.held = 0;
    this.arrived(this.unsent);
    // What is still buffered is not going to be read: let it drain, so that a
    // stream the client has reset meanwhile ends and closes (one that ended
    // holds nothing).
    if (!this.stream.readableEnded) this.stream.resume();
  }

  holdBack(): void {
    this.heldBack = true;
  }

  release(): void {
    if (!this.heldBack) return;
    this.heldBack = false;
    if (!this.closed && !this.waiting && !this.inflating) this.resume();
  }

  private arrived(n: number): void {
    const k = Math.min(n, this.unsent);
    this.unsent -= k;
    this.opts.announced.give(k);
  }

  private fail(why: ReadFailure): void {
    this.close();
    this.sink.fail(why);
  }

  private resume(): void {
    const chunk = this.parkedChunk;
    this.parkedChunk = undefined;
    if (chunk) this.consume(chunk, this.parkedOffset);
    if (this.closed || this.parkedChunk) return;
    if (this.endedMeanwhile) this.ended();
    else if (!this.heldBack) this.stream.resume();
  }

  private park(chunk: Buffer, offset: number): void {
    this.parkedChunk = chunk;
    this.parkedOffset = offset;
    this.stream.pause();
  }

  private deliver(message: Uint8Array): void {
    if (!this.opts.keep) {
      this.opts.budget.give(this.need);
      this.held -= this.need;
    }
    this.need = 0;
    this.sink.message(message);
  }

  private complete(chunk: Buffer, offset: number): boolean {
    const message = this.body!;
    this.body = undefined;
    if (!this.compressed) {
      this.deliver(message);
      return true;
    }
    this.park(chunk, offset);
    this.inflating = true;
    gunzip(message, { maxOutputLength: this.opts.maxRequestBytes }, (err, inflated) => {
      this.inflating = false;
      if (this.closed) return;
      if (err) return this.fail(err instanceof RangeError ? "too_large" : "malformed");
      // The compressed form is garbage now: the room kept is the inflated size.
      const kept = inflated.length;
      this.opts.budget.give(this.need - kept);
      this.held -= this.need - kept;
      this.need = kept;
      this.deliver(inflated);
      if (!this.closed) this.resume();
    });
    return false;
  }

  // Takes the room for the message whose prefix was just read (its length
  // in what its address may announce, then its room in the budget), at once
  // or after a wait (the stream paused); false when it is waiting.
  private admit(chunk: Buffer, offset: number, length: number): boolean {
    const { budget, announced } = this.opts;
    this.need = length + (this.compressed ? this.opts.maxRequestBytes : 0);
    // An empty message needs no room: it waits behind nobody.
    if (this.need === 0) return this.admitted(0);
    if (announced.take(length)) {
      if (budget.take(this.need)) return this.admitted(length);
      announced.give(length);
    }
    this.park(chunk, offset);
    const waiting = (this.waiting = new AbortController());
    void this.reserve(length, waiting.signal).then((ok) => {
      this.waiting = undefined;
      if (this.closed) {
        if (ok) {
          budget.give(this.need);
          announced.give(length);
        }
        return;
      }
      if (!ok) return this.fail("busy");
      this.admitted(length);
      this.startBody(length);
      this.resume();
    });
    return false;
  }

  private admitted(length: number): boolean {
    this.held += this.need;
    this.unsent = length;
    return true;
  }

  // One wait, however it is shared between the two.
  private async reserve(length: number, signal: AbortSignal): Promise<boolean> {
    const { budget, announced } = this.opts;
    const until = Date.now() + waitMs(this.opts.deadline);
    if (!(await announced.reserve(length, until - Date.now(), signal))) return false;
    if (await budget.reserve(this.need, until - Date.now(), signal)) return true;
    announced.give(length);
    return false;
  }

  private startBody(length: number): void {
    this.reading = "body";
    this.expected = length;
    this.body = undefined;
    this.bodyFilled = 0;
  }

  private consume(chunk: Buffer, offset: number): void {
    while (!this.closed) {
      if (this.reading === "prefix") {
        if (offset >= chunk.length) return;
        if (this.heldBack) return this.park(chunk, offset);
        // The flag, then the length's four bytes, big-endian.
        while (this.prefixFilled < PREFIX_BYTES && offset < chunk.length) {
          const byte = chunk[offset++]!;
          if (this.prefixFilled++ === 0) {
            this.flag = byte;
            this.length = 0;
          } else {
            this.length = this.length * 256 + byte;
          }
        }
        if (this.prefixFilled < PREFIX_BYTES) return;
        this.prefixFilled = 0;
        const { flag, length } = this;
        // A compressed message needs a grpc-encoding saying how.
        if (flag > 1 || (flag === 1 && !this.opts.gzip)) return this.fail("malformed");
        if (length > this.opts.maxRequestBytes) return this.fail("too_large");
        this.compressed = flag === 1;
        this.sink.begin();
        if (this.closed || !this.admit(chunk, offset, length)) return;
        this.startBody(length);
      }
      const expected = this.expected;
      if (expected > 0 && offset >= chunk.length) return;
      if (this.body === undefined) {
        if (chunk.length - offset >= expected) {
          // The whole body in this chunk: a view, no copy.
          this.body = chunk.subarray(offset, offset + expected);
          this.bodyFilled = expected;
          offset += expected;
          this.arrived(expected);
        } else {
          this.body = Buffer.allocUnsafe(expected);
        }
      }
      if (this.bodyFilled < expected) {
        const n = Math.min(expected - this.bodyFilled, chunk.length - offset);
        chunk.copy(this.body, this.bodyFilled, offset, offset + n);
        this.bodyFilled += n;
        offset += n;
        this.arrived(n);
        if (this.bodyFilled < expected) return;
      }
      this.reading = "prefix";
      if (!this.complete(chunk, offset)) return;
    }
  }

  private ended(): void {
    if (this.closed) return;
    // All data was handed over, but part of it is parked: the end comes after it.
    if (this.parkedChunk) {
      this.endedMeanwhile = true;
      return;
    }
    // Ended inside a message: a truncated request.
    if (this.prefixFilled > 0 || this.reading === "body") return this.fail("malformed");
    // What a unary call's message holds stays held until `close`.
    this.stream.off("data", this.onData);
    this.stream.off("end", this.onEnd);
    this.sink.end();
  }
}
