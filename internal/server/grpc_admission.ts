import * as grpc from "@grpc/grpc-js";
import type { ByteBudget } from "../pkg/limit/queue.js";
import { toGrpcStatus } from "./grpc_status.js";
import { requestRefused, type Refusal } from "./request_refused.js";
import { refuse, type Route } from "./handlers.js";
import type { RequestHeader } from "../transport/call.js";
import { metadataHeader, peerAddress, refuseThroughChain } from "./grpc_adapter.js";
import { replaceOnOwnCall, returnOwnCall } from "./seams/grpc_js.js";

const noHeader: RequestHeader = { get: () => null };

export interface AdmissionOptions {
  routes: Route[];
  budget: ByteBudget;
  maxRequestBytes: number;
  /** How long a request may take to arrive once let in (server.grpc.timeout). */
  readTimeoutMs: number;
}

/** The longest a call waits for room before it is refused as busy. */
const maxWaitMs = 10_000;

/**
 * Request bytes in flight on the gRPC port, counted against the budget the
 * HTTP port counts against too. grpc-js reads a whole message once a
 * handler asks for one, and shows none of it before: so each read is
 * covered in advance by twice max_request_bytes (room for a message and its
 * decompressed form, or for the second message a careless unary client
 * sends), taken before grpc-js may read (the stream stays paused while it
 * waits, HTTP/2 flow control holding the client back). A unary call keeps
 * what its message needs once its request is complete; a stream gives each
 * message back once delivered. A call that finds no room within its deadline
 * (at most 10 s) is refused as busy (RESOURCE_EXHAUSTED, RetryInfo); a
 * request that does not arrive within readTimeoutMs of being let in is
 * refused DEADLINE_EXCEEDED, so a silent client cannot hold room for ever.
 * Every path is counted, health and reflection too.
 */
export function admissionInterceptor(opts: AdmissionOptions): grpc.ServerInterceptor {
  const { budget } = opts;
  const perRead = 2 * opts.maxRequestBytes;
  const byPath = new Map(opts.routes.map((r) => [`/${r.service.typeName}/${r.method.name}`, r]));
  return (definition, call) => {
    const route = byPath.get(definition.path);
    const unary = !definition.requestStream;
    let held = 0;
    let message = 0;
    let ended = false;
    let stall: NodeJS.Timeout | undefined;
    // Made only when a call has to wait for room.
    let cancelled: AbortController | undefined;
    // The caller's headers, once they came: a refusal goes through the chain
    // as the caller's call (with auth on, a busy caller is told it is busy,
    // not that it has no token).
    let header = noHeader;
    // The only interceptor, so `call` is grpc-js's own.
    const delivered = route
      ? refuseThroughChain(call, route, opts.maxRequestBytes, () => header)
      : undefined;

    const give = (n: number) => {
      budget.give(n);
      held -= n;
    };
    const readDone = () => {
      clearTimeout(stall);
      stall = undefined;
    };
    const end = () => {
      ended = true;
      readDone();
      cancelled?.abort();
      give(held);
    };
    const answer = (refusal: Refusal) => {
      const status = route
        ? refuse(
            route,
            "grpc",
            header,
            requestRefused(route.method, refusal, opts.maxRequestBytes),
            peerAddress(call.getPeer()),
          ).then((e) => toGrpcStatus(e) as grpc.StatusObject)
        : Promise.resolve(plainStatus(refusal));
      void status.then((s) => {
        if (!ended) call.sendStatus(s);
      });
    };
    const admitted = (read: () => void) => {
      held += perRead;
      stall = setTimeout(() => answer("stalled"), opts.readTimeoutMs);
      read();
    };
    // Room for one read, then the read itself; refused when there is none.
    // With room at once (the usual case) it reads at once: no promise, no
    // abort machinery.
    const admit = (read: () => void) => {
      // A read asked for after the call ended (a stream cancelled meanwhile).
      if (ended) return;
      if (budget.take(perRead)) return admitted(read);
      cancelled = new AbortController();
      void budget.reserve(perRead, waitMs(call.getDeadline()), cancelled.signal).then((ok) => {
        if (ended) {
          if (ok) budget.give(perRead);
          return;
        }
        if (!ok) return answer("busy");
        admitted(read);
      });
    };

    // No ServerInterceptingCall: grpc-js's own call is returned with three
    // of its methods replaced (seams/grpc_js.ts), which spares every call an
    // intercepting call, a listener chain and a continuation per event. What
    // that chain did for us is done here: once the call is answered, nothing
    // more reaches its handler (a client's END_STREAM after a refusal would
    // otherwise run it, and give back room twice).
    replaceOnOwnCall(call, "sendStatus", (send) => (status) => {
      // Room comes back as the answer leaves, not when the client has read
      // it (a client that never reads would keep it).
      end();
      send(status);
    });
    replaceOnOwnCall(
      call,
      "start",
      (start) => (listener) =>
        start({
          onReceiveMetadata: (metadata) => {
            header = metadataHeader(metadata);
            admit(() => listener.onReceiveMetadata(metadata));
          },
          onReceiveMessage: (msg: Buffer) => {
            if (ended) return;
            delivered?.();
            if (unary) {
              message += msg.length;
            } else {
              // A stream's handler takes each message as it comes: room for the next read only.
              readDone();
              give(held);
            }
            listener.onReceiveMessage(msg);
          },
          onReceiveHalfClose: () => {
            if (ended) return;
            readDone();
            // What stays is the request the handler now serves.
            give(held - message);
            listener.onReceiveHalfClose();
          },
          // grpc-js tells every call's listener this once the call is over,
          // answered or not.
          onCancel: () => {
            end();
            listener.onCancel();
          },
        }),
    );
    // The first read was covered when the call was let in; a stream's later
    // reads are covered one by one (a unary call's second read, which waits
    // for the half-close, is inside its first cover).
    let reads = 0;
    replaceOnOwnCall(call, "startRead", (startRead) => () => {
      reads++;
      if (unary || reads === 1) return startRead();
      admit(startRead);
    });
    return returnOwnCall(call);
  };
}

function waitMs(deadline: grpc.Deadline): number {
  const due = typeof deadline === "number" ? deadline : deadline.getTime();
  return Math.min(maxWaitMs, due - Date.now());
}

/** For health and reflection, which have no route (no chain, no ErrorInfo domain). */
function plainStatus(refusal: Refusal): grpc.StatusObject {
  return refusal === "stalled"
    ? {
        code: grpc.status.DEADLINE_EXCEEDED,
        details: "request not received in time",
        metadata: new grpc.Metadata(),
      }
    : {
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: "server busy: too many request bytes in flight; retry",
        metadata: new grpc.Metadata(),
      };
}
