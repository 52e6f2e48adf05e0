import { cors } from "@connectrpc/connect";
import type { Request, Response } from "./http_routes.js";

/**
 * Whether `origin` is allowed: listed exactly, "*" (any), or an entry ending
 * in ":*" (that scheme and host on any port: "http://localhost:*").
 */
export function originAllowed(allowed: readonly string[], origin: string): boolean {
  return allowed.some((entry) => {
    if (entry === "*" || entry === origin) return true;
    if (!entry.endsWith(":*")) return false;
    const base = entry.slice(0, -2);
    return (
      origin === base ||
      (origin.startsWith(`${base}:`) && /^\d{1,5}$/.test(origin.slice(base.length + 1)))
    );
  });
}

// Browsers must be allowed to send the bearer token too.
const allowedHeaders = [...cors.allowedHeaders, "Authorization"].join(", ");

/**
 * CORS for browser clients on the allowed origins, with the methods and
 * headers Connect and gRPC-Web need. Returns true when it answered a
 * preflight itself.
 */
export function applyCors(allowed: readonly string[], req: Request, res: Response): boolean {
  const origin = req.headers.origin;
  if (typeof origin !== "string" || !originAllowed(allowed, origin)) return false;
  res.setHeader("access-control-allow-origin", origin);
  res.setHeader("vary", "Origin");
  res.setHeader("access-control-expose-headers", cors.exposedHeaders.join(", "));
  if (req.method !== "OPTIONS") return false;
  res.setHeader("access-control-allow-methods", cors.allowedMethods.join(", "));
  res.setHeader("access-control-allow-headers", allowedHeaders);
  res.setHeader("access-control-max-age", "7200");
  res.writeHead(204);
  res.end();
  return true;
}
