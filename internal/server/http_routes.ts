import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { Registry } from "prom-client";

type NodeHandler = NonNullable<ConnectNodeAdapterOptions["fallback"]>;
export type Request = Parameters<NodeHandler>[0];
export type Response = Parameters<NodeHandler>[1];

import type { Authenticator } from "./auth/authenticator.js";
import { checkReadiness, type ReadinessCheck } from "./readiness.js";
import { answerUnknownMethod } from "./unknown_method.js";

export type { ReadinessCheck };

export interface PlainRoutes {
  readiness: Record<string, ReadinessCheck>;
  registry: Registry;
  /** Set when /metrics needs a token with scope metrics.read. */
  metricsAuthenticator?: Authenticator;
  /** True once shutdown began: /readyz then answers 503. */
  stopping: () => boolean;
  /** API packages served (user.v1…): the ErrorInfo domain of an unknown method's answer. */
  packages: ReadonlySet<string>;
  /** openapi.yaml's text, served as it is. */
  openApi: string;
}

/**
 * The plain HTTP endpoints beside Connect: GET /healthz (the process is
 * alive), GET /readyz (every readiness check passes), GET /metrics
 * (Prometheus; with a token when auth.protect_metrics is set), GET
 * /openapi.yaml (the REST routes' OpenAPI document; no token, like the
 * protos it is made from). Anything else is 404.
 */
export function plainRoutes(routes: PlainRoutes) {
  return async (req: Request, res: Response): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0];
    const get = req.method === "GET" || req.method === "HEAD";
    if (get && path === "/healthz") return json(res, 200, { status: "ok" });
    if (get && path === "/readyz") {
      const { ready, checks } = await readiness(routes);
      return json(res, ready ? 200 : 503, { status: ready ? "ready" : "not ready", checks });
    }
    if (get && path === "/metrics") {
      if (routes.metricsAuthenticator) {
        const caller = await routes.metricsAuthenticator(req.headers.authorization ?? null);
        if (caller.problem) return json(res, 401, { error: "unauthenticated" });
        if (!caller.scopes.has("metrics.read"))
          return json(res, 403, { error: "missing scope metrics.read" });
      }
      const body = await routes.registry.metrics();
      res.writeHead(200, { "content-type": routes.registry.contentType });
      res.end(body);
      return;
    }
    if (get && path === "/openapi.yaml") {
      res.writeHead(200, { "content-type": "application/yaml" });
      res.end(routes.openApi);
      return;
    }
    if (answerUnknownMethod(req, res, path ?? "", routes.packages)) return;
    json(res, 404, { error: "not found" });
  };
}

async function readiness(routes: PlainRoutes) {
  if (routes.stopping()) return { ready: false, checks: { server: "shutting down" } };
  return checkReadiness(routes.readiness);
}

/** A request's headers as the chain reads them (HTTP/2 pseudo-headers left out). */
export function headersOf(req: Request): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (typeof value === "string" && !key.startsWith(":")) headers.set(key, value);
  }
  return headers;
}

function json(res: Response, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}
