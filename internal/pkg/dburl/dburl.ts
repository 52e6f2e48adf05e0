/** host:port/database of a connection string, without user or password: safe to log. */
export function describe(source: string): string {
  try {
    const url = new URL(source);
    return `${url.hostname}:${url.port || "5432"}${url.pathname}`;
  } catch {
    return "(unparsable database URL)";
  }
}
