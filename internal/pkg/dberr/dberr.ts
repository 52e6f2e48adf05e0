// Which database failures mean "not reachable right now" (the caller should
// retry, the instance is not ready) rather than "this query failed".

const NETWORK = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

// SQLSTATEs: 08xxx connection exceptions; the server shutting down, crashed
// or starting; too many connections.
const UNAVAILABLE_STATES = new Set(["57P01", "57P02", "57P03", "53300"]);

// node-postgres reports these without a code: its texts, pinned on the
// installed pg by test/unit/seam_pg_messages.test.ts.
const CLIENT_MESSAGES = [
  /^Connection terminated/,
  /timeout exceeded when trying to connect/,
  /is not queryable/,
  /^Client was closed/,
];

/** The pg and pg-pool versions CLIENT_MESSAGES was written for: [from, below), major.minor. */
export const writtenFor = {
  pg: { from: [8, 0], below: [9, 0] },
  "pg-pool": { from: [3, 0], below: [4, 0] },
} as const;

/** True when `err` (or its cause) says the database could not be reached or dropped the connection. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      if (NETWORK.has(code) || UNAVAILABLE_STATES.has(code) || code.startsWith("08")) return true;
    }
    if (CLIENT_MESSAGES.some((m) => m.test(e.message))) return true;
    if (e instanceof AggregateError && e.errors.some((x) => isDatabaseUnavailable(x))) return true;
  }
  return false;
}

/**
 * PostgreSQL's SQLSTATE of `err`, when it has one: not a Node system code,
 * even one of five capitals (EPIPE, EPERM); no SQLSTATE class begins with E.
 */
export function sqlstateOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" && /^[0-9A-DF-Z][0-9A-Z]{4}$/.test(code) ? code : undefined;
}
