import type pg from "pg";
import { background, type Context } from "../biz/context.js";

/**
 * Runs `fn` in one transaction on a client of `pool`: committed when it
 * returns, rolled back when it throws. The call's deadline is checked right
 * before COMMIT (ctx.beginCommit), so a write past it is never committed.
 */
export function withTx<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
  ctx: Context = background,
): Promise<T> {
  return inTx(pool, "BEGIN", fn, ctx);
}

/** `fn` in one READ ONLY transaction: the database refuses any write in it. */
export function withReadOnlyTx<T>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  return inTx(pool, "BEGIN READ ONLY", fn, background);
}

async function inTx<T>(
  pool: pg.Pool,
  begin: string,
  fn: (client: pg.PoolClient) => Promise<T>,
  ctx: Context,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query(begin);
    const result = await fn(client);
    ctx.beginCommit();
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
