import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import type { DataVerification } from "../internal/biz/data_verify.js";
import { PII_FIELDS } from "../internal/biz/user.js";
import { parseConfig } from "../internal/conf/load.js";
import { seedUsers } from "./lib/seed.js";

/** Rows per read, for ours and for the limit (the tool's default). */
const BATCH = 1000;
// The built tool, as an operator runs it (`npm run bench` builds first).
const tool = resolve("dist/cmd/migrate/main.js");

export interface VerifyResult {
  users: number;
  setup: { sealMs: number; insertMs: number; vacuumMs: number };
  /** The tool's own figures (its JSON), and the process's wall time. */
  ours: { rows: number; seconds: number; perSecond: number; wallSeconds: number };
  limit: { rows: number; seconds: number; perSecond: number };
  invalid: string[];
}

/**
 * `migrate verify --data` over `users` users against the limit: a plain
 * SELECT of the same columns, keyset-paginated in batches of the same size in
 * READ ONLY transactions, nothing decrypted. The users are written straight
 * into the database with values sealed and indexed by the service's own
 * field cipher (bench/lib/seed.ts: three data key versions, then a fourth
 * active). The limit runs before and after ours (the faster counts: the
 * first warms the cache); ours is the built tool with the server's config,
 * its rate as it reports it (--json: reading and checking, not the process
 * start or the KMS's).
 */
export async function verifyBench(url: string, users: number): Promise<VerifyResult> {
  const invalid: string[] = [];
  const rootKey = Buffer.alloc(32, 5).toString("base64");
  const conf = parseConfig(
    { data: { database: { source: url, migrate: "off" } }, kms: { root_key: rootKey } },
    "bench",
  );
  const setup = await seedUsers(url, conf, users);
  const dir = mkdtempSync(join(tmpdir(), "kbts-bench-verify-"));
  try {
    const confFile = join(dir, "server.yaml");
    writeFileSync(
      confFile,
      `data: { database: { source: "${url}" } }\nkms: { root_key: "${rootKey}" }\nlog: { level: warn }\n`,
    );
    const first = await plainSelect(url);
    const started = performance.now();
    const run = spawnSync(
      process.execPath,
      [tool, "verify", "--data", "-conf", confFile, "--json"],
      {
        env: { ...process.env, DATABASE_URL: "", KMS_ROOT_KEY: "" },
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    const wallSeconds = (performance.now() - started) / 1000;
    const second = await plainSelect(url);
    const limit = first.seconds <= second.seconds ? first : second;
    if (run.status !== 0) invalid.push(`verify --data exited ${run.status}: ${run.stderr.trim()}`);
    let v: DataVerification | undefined;
    try {
      v = JSON.parse(run.stdout) as DataVerification;
    } catch {
      invalid.push("verify --data printed no JSON");
    }
    if (v && (v.rows !== users || !v.ok))
      invalid.push(`verify --data checked ${v.rows} rows of ${users}, ${v.failuresTotal} failed`);
    if (limit.rows !== users) invalid.push(`the plain SELECT read ${limit.rows} rows of ${users}`);
    return {
      users,
      setup,
      ours: {
        rows: v?.rows ?? 0,
        seconds: v?.seconds ?? wallSeconds,
        perSecond: v?.rowsPerSecond ?? 0,
        wallSeconds,
      },
      limit,
      invalid,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The limit: the columns verify reads, batch after batch, each in a READ ONLY transaction. */
async function plainSelect(url: string): Promise<VerifyResult["limit"]> {
  const columns = PII_FIELDS.flatMap((f) => [
    `${f}_encrypted`,
    `${f}_key_version`,
    `${f}_hash`,
    `${f}_hash_b`,
  ]).join(", ");
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const started = performance.now();
    let after = 0;
    let rows = 0;
    for (;;) {
      await client.query("BEGIN READ ONLY");
      const r = await client.query<{ id: number }>(
        `SELECT id, index_epoch, ${columns} FROM users WHERE id > $1 ORDER BY id LIMIT $2`,
        [after, BATCH],
      );
      await client.query("COMMIT");
      if (r.rows.length === 0) break;
      rows += r.rows.length;
      after = r.rows.at(-1)!.id;
    }
    const seconds = (performance.now() - started) / 1000;
    return { rows, seconds, perSecond: rows / seconds };
  } finally {
    await client.end();
  }
}
