import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Limits, Server } from "../../conf/conf_pb.js";
import type { Logger } from "../../pkg/log/logger.js";
import { chain, type Middleware } from "../call.js";
import type { RpcMetrics } from "../metrics.js";
import type { Authenticator } from "../auth/authenticator.js";
import { authenticate, authorize } from "./auth.js";
import { deadline } from "./deadline.js";
import { logging } from "./logging.js";
import { metrics } from "./metrics.js";
import { rateLimit } from "./ratelimit.js";
import { recovery } from "./recovery.js";
import { validation } from "./validation.js";

/**
 * The one middleware chain both transports run, outermost first: metrics and
 * the request log see the final code (and the log, the caller); recovery maps
 * every failure to a coded error; authorization and the per-caller rate
 * limit refuse before any other work; the deadline bounds the rest;
 * validation guards the handler.
 */
export function middlewareChain(opts: {
  server: Server;
  limits: Limits;
  log: Logger;
  rpc: RpcMetrics;
  authenticator: Authenticator;
}): Middleware {
  const { server, limits, log } = opts;
  const grpcMs = durationMs(server.grpc!.timeout!);
  const httpMs = durationMs(server.http!.timeout!);
  return chain(
    metrics(opts.rpc),
    authenticate(opts.authenticator),
    logging(log),
    recovery(log),
    authorize(),
    rateLimit(limits.callsPerSecond, limits.burst),
    deadline({ grpc: grpcMs, connect: httpMs }),
    validation(),
  );
}
