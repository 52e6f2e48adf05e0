import type { Guard } from "../../transport/middleware.js";
import { tokenBuckets } from "../../pkg/limit/queue.js";
import { rpcErrors } from "../errors.js";

/**
 * A token bucket per caller (its token's name; with authentication off, one
 * bucket for everyone): past `rate` calls per second and `burst` at once,
 * RESOURCE_EXHAUSTED with RetryInfo. Per instance; none (undefined) when
 * `rate` is 0.
 */
export function rateLimit(rate: number, burst: number): Guard | undefined {
  if (rate <= 0) return undefined;
  const buckets = tokenBuckets(rate, Math.max(1, burst));
  return (call) => {
    const wait = buckets.take(call.caller?.name ?? "anonymous");
    if (wait > 0) throw rpcErrors.rateLimited(call.service, wait);
  };
}
