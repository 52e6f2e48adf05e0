import type { ByteBudget } from "../pkg/limit/queue.js";
import type { Request } from "./http_routes.js";

/** What a request body holds of the port's budget, given back when its answer is done. */
export interface BodyHold {
  bytes: number;
}

/**
 * Judges a request body by its Content-Length before any of it is read:
 * past `maxBytes` it is refused as too large, and where the budget has no
 * room for it now it is refused as busy, unread, rather than after reading
 * what the budget cannot hold. Nothing is taken here: a body holds room
 * only for the bytes that have arrived (`payChunk`), so a client announcing
 * bodies it never sends holds nothing. "unknown" when there is no length to
 * go by (chunked, or HTTP/2 without the header).
 */
export function judgeLength(
  req: Request,
  budget: ByteBudget,
  maxBytes: number,
): "fits" | "busy" | "too_large" | "unknown" {
  const header = req.headers["content-length"];
  // Node's parsers let only digits through; anything else reads as no length.
  if (typeof header !== "string" || !/^\d{1,15}$/.test(header)) return "unknown";
  const length = Number(header);
  if (length > maxBytes) return "too_large";
  if (length > 0 && !budget.fits(2 * length)) return "busy";
  return "fits";
}

/**
 * Pays for a chunk of a body as it arrives, twice its length (the chunks,
 * then the one message or text they make, are held at once); false, taking
 * nothing, when the budget cannot hold it.
 */
export function payChunk(budget: ByteBudget, hold: BodyHold, length: number): boolean {
  if (!budget.take(2 * length)) return false;
  hold.bytes += 2 * length;
  return true;
}
