import type { IncomingHttpHeaders } from "node:http2";
import { deadlineOf } from "./timeout.js";

/** What a call's headers say about reading it, or why they cannot be served. */
export type RequestHead =
  | { ok: true; deadline: number | undefined; gzip: boolean }
  | { ok: false; refusal: "bad_timeout" | "bad_compression" };

/** grpc-timeout and grpc-encoding, read once at the call's start. */
export function readHead(headers: IncomingHttpHeaders, now: number): RequestHead {
  const timeout = headers["grpc-timeout"];
  const deadline = Array.isArray(timeout) ? null : deadlineOf(timeout, now);
  if (deadline === null) return { ok: false, refusal: "bad_timeout" };
  const encoding = headers["grpc-encoding"];
  if (encoding !== undefined && encoding !== "identity" && encoding !== "gzip") {
    return { ok: false, refusal: "bad_compression" };
  }
  return { ok: true, deadline, gzip: encoding === "gzip" };
}
