import type { ByteBudget } from "../pkg/limit/queue.js";
import type { Request } from "./http_routes.js";

/** What a request body holds of the port's budget, given back when its answer is done. */
export interface BodyHold {
  bytes: number;
  /** Paid in full before reading, by its announced length. */
  prepaid: boolean;
}

/**
 * Pays for a request body before any of it is read, by its Content-Length:
 * refused at once ("busy") when the budget cannot hold it, rather than after
 * reading what it cannot hold. Each byte counts twice: the chunks, then the
 * one message (or text) they make, held at once. Past `maxBytes` it is
 * refused as too large, unread. "unannounced" when there is no length to go
 * by (a chunked or HTTP/2 body without one): the body is then paid as it
 * arrives, with `payChunk`.
 */
export function prepay(
  req: Request,
  budget: ByteBudget,
  hold: BodyHold,
  maxBytes: number,
): "paid" | "busy" | "too_large" | "unannounced" {
  const header = req.headers["content-length"];
  // Node's parsers let only digits through; anything else reads as no length.
  if (typeof header !== "string" || !/^\d{1,15}$/.test(header)) return "unannounced";
  const length = Number(header);
  if (length > maxBytes) return "too_large";
  if (!budget.take(2 * length)) return "busy";
  hold.bytes += 2 * length;
  hold.prepaid = true;
  return "paid";
}

/** Pays for a chunk of a body not paid in advance; false (taking nothing) when the budget cannot hold it. */
export function payChunk(budget: ByteBudget, hold: BodyHold, length: number): boolean {
  if (hold.prepaid) return true;
  if (!budget.take(2 * length)) return false;
  hold.bytes += 2 * length;
  return true;
}
