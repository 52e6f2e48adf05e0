/**
 * Opaque keyset page tokens: the last position served (a row id or key
 * version, both INTEGER columns) bound to the filter the page was asked with,
 * so a token is refused when replayed against another query.
 */
export function writePageToken(last: number, filter: string | undefined): string {
  return Buffer.from(JSON.stringify({ l: last, f: filter ?? null })).toString("base64url");
}

/** The position in a token issued for `filter`, or undefined when it was not. */
export function readPageToken(token: string, filter: string | undefined): number | undefined {
  try {
    const t = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as {
      l: unknown;
      f: unknown;
    };
    const last = t.l as number;
    if (Number.isInteger(last) && last > 0 && last <= 2147483647 && t.f === (filter ?? null))
      return last;
  } catch {
    // not JSON: refused below
  }
  return undefined;
}
