import pg from "pg";

/** Runs `fn` on a new database on the server of `adminUrl`, dropped afterwards. */
export async function withDatabase<T>(
  adminUrl: string,
  fn: (url: string) => T | Promise<T>,
): Promise<T> {
  const name = `bench_${process.pid}_${Date.now()}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  // What the previous contender left dirty (and the copy just made) is
  // written out now, not charged to whoever runs next. Needs superuser or
  // pg_checkpoint; without, the noise stays.
  await admin.query("CHECKPOINT").catch(() => undefined);
  try {
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    return await fn(url.toString());
  } finally {
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
  }
}

/** Runs `fn` on one connection to `url`, closed afterwards. */
export async function one<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
