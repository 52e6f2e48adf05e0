import * as grpc from "@grpc/grpc-js";
import type { ByteBudget } from "../pkg/limit/queue.js";
import { requestRefused, toGrpcStatus } from "./errors.js";
import { refuse, type Route } from "./handlers.js";

/** The longest a call waits for room for its request before it is refused as busy. */
const maxAdmissionWaitMs = 10_000;

/**
 * Request bytes in flight on the gRPC port, counted against the budget the
 * HTTP port counts against too. grpc-js reads a call's whole message once
 * its handler asks for it, and shows none of it before: so a call first
 * waits, before the handler hears of it, for room for the largest message it
 * may send (its stream stays paused meanwhile, HTTP/2 flow control holding
 * the client back). Once the message is in, what it did not need goes back;
 * the rest when the call ends. A call that finds no room within its deadline
 * (at most 10 s) is refused as busy (RESOURCE_EXHAUSTED, RetryInfo).
 */
export function admissionInterceptor(
  routes: Route[],
  budget: ByteBudget,
  maxRequestBytes: number,
): grpc.ServerInterceptor {
  const byPath = new Map(routes.map((r) => [`/${r.service.typeName}/${r.method.name}`, r]));
  return (definition, call) => {
    const route = byPath.get(definition.path);
    if (!route) return new grpc.ServerInterceptingCall(call);
    let held = 0;
    const release = () => {
      budget.give(held);
      held = 0;
    };
    const cancelled = new AbortController();
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        void budget
          .reserve(maxRequestBytes, waitMs(call.getDeadline()), cancelled.signal)
          .then((ok) => {
            if (ok && cancelled.signal.aborted) budget.give(maxRequestBytes);
            if (cancelled.signal.aborted) return;
            if (ok) {
              held = maxRequestBytes;
              return next(metadata);
            }
            const error = requestRefused(route.method, "busy", maxRequestBytes);
            return refuse(route, "grpc", new Headers(), error).then((e) =>
              intercepting.sendStatus(toGrpcStatus(e) as grpc.StatusObject),
            );
          });
      })
      .withOnReceiveMessage((message: Buffer, next) => {
        budget.give(held - message.length);
        held = message.length;
        next(message);
      })
      .withOnCancel(() => {
        cancelled.abort();
        release();
      })
      .build();
    const intercepting = new grpc.ServerInterceptingCall(call, {
      start: (next) => next(listener),
      sendStatus: (status, next) => {
        release();
        next(status);
      },
    });
    return intercepting;
  };
}

function waitMs(deadline: grpc.Deadline): number {
  const due = typeof deadline === "number" ? deadline : deadline.getTime();
  return Math.min(maxAdmissionWaitMs, due - Date.now());
}
