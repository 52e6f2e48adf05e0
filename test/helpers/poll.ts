/**
 * Reads `get` every 50 ms until `done` holds of what it answers, for at most
 * about a minute (a bound, not a timing assertion); the last answer is in
 * the error.
 */
export async function until<T>(get: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  for (let i = 0; ; i++) {
    const v = await get();
    if (done(v)) return v;
    if (i > 1200)
      throw new Error(
        `not done: ${JSON.stringify(v, (_, x) => (typeof x === "bigint" ? String(x) : x))}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}
