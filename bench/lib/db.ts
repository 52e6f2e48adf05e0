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
  try {
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    return await fn(url.toString());
  } finally {
    await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
  }
}
