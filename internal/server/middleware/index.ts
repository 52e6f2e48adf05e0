import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Limits, Server } from "../../conf/conf_pb.js";
import type { Logger } from "../../pkg/log/logger.js";
import { chain, type Guard, type Middleware, type Observer } from "../../transport/middleware.js";
import type { RpcMetrics } from "../metrics.js";
import type { Authenticator } from "../auth/authenticator.js";
import { authorize } from "./auth.js";
import { deadline } from "./deadline.js";
import { requestLog } from "./logging.js";
import { metricsObserver } from "./metrics.js";
import { observe } from "./observe.js";
import { peerLimit } from "./peer_limit.js";
import { rateLimit } from "./ratelimit.js";
import { validation } from "./validation.js";

/**
 * The one middleware chain both transports run, outermost first: `observe`
 * finds the caller (refusing first an address past its limit of failed
 * authentications), maps every failure to a coded error and reports each
 * call to the metrics and the request log (both see the final code, the log
 * the caller); the guards refuse before any other work (authorization, the
 * per-caller rate limit, validation), synchronously; the deadline bounds the
 * handler. Three steps, so that a call pays for one async frame and one
 * timer, not one promise per concern. The call is never written to:
 * `observe` hands the rest a copy with the caller attached, `deadline` one
 * with the commit gate (internal/transport).
 */
export function middlewareChain(opts: {
  server: Server;
  limits: Limits;
  log: Logger;
  /** The fraction of successful calls the request log writes (log.request_sample); 1 when left out. */
  requestSample?: number;
  rpc: RpcMetrics;
  authenticator: Authenticator;
}): Middleware {
  const { server, limits, log } = opts;
  const present = <T>(xs: (T | undefined)[]) => xs.filter((x): x is T => x !== undefined);
  return chain(
    observe({
      authenticator: opts.authenticator,
      peerLimit: peerLimit(limits.authFailuresPerMinute, limits.authFailureBurst),
      log,
      observers: present<Observer>([
        metricsObserver(opts.rpc),
        requestLog(log, opts.requestSample ?? 1),
      ]),
    }),
    guards(
      present<Guard>([authorize, rateLimit(limits.callsPerSecond, limits.burst), validation()]),
    ),
    deadline({
      grpc: durationMs(server.grpc!.timeout!),
      connect: durationMs(server.http!.timeout!),
      rest: durationMs(server.http!.timeout!),
    }),
  );
}

/** Runs the guards in order; the first to refuse answers the call. */
function guards(checks: Guard[]): Middleware {
  return (next) => (call) => {
    for (const check of checks) check(call);
    return next(call);
  };
}
