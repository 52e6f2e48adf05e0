import { cors } from "@connectrpc/connect";
import type { Request, Response } from "./http_routes.js";

/**
 * CORS for browser clients on the allowed origins ("*" allows any), with the
 * methods and headers Connect and gRPC-Web need. Returns true when it
 * answered a preflight itself.
 */
export function applyCors(allowed: readonly string[], req: Request, res: Response): boolean {
  const origin = req.headers.origin;
  if (typeof origin !== "string" || !(allowed.includes("*") || allowed.includes(origin)))
    return false;
  res.setHeader("access-control-allow-origin", origin);
  res.setHeader("vary", "Origin");
  res.setHeader("access-control-expose-headers", cors.exposedHeaders.join(", "));
  if (req.method !== "OPTIONS") return false;
  res.setHeader("access-control-allow-methods", cors.allowedMethods.join(", "));
  res.setHeader("access-control-allow-headers", cors.allowedHeaders.join(", "));
  res.setHeader("access-control-max-age", "7200");
  res.writeHead(204);
  res.end();
  return true;
}
