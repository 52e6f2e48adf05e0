import type { IncomingHttpHeaders } from "node:http2";
import type { RequestHeader } from "../../transport/call.js";

/**
 * Reads a call's metadata in place, as the chain asks for it. Binary
 * (`-bin`) entries are not text and read as absent, as grpc-js gave them.
 */
export const metadataHeader = (headers: IncomingHttpHeaders): RequestHeader =>
  new Metadata(headers);

class Metadata implements RequestHeader {
  constructor(private readonly headers: IncomingHttpHeaders) {}

  get(name: string): string | null {
    if (name.endsWith("-bin")) return null;
    const value = this.headers[name];
    return typeof value === "string" ? value : Array.isArray(value) ? value.join(", ") : null;
  }
}

/** The one text value of a header, undefined when absent or repeated. */
export const single = (headers: IncomingHttpHeaders, name: string): string | undefined => {
  const value = headers[name];
  return typeof value === "string" ? value : undefined;
};
