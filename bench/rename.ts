import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as wait } from "node:timers/promises";
import pg from "pg";
import { one, withDatabase } from "./lib/db.js";
import { startProbe, type PhaseFigures } from "./lib/probe.js";

// The built tool, as a deploy runs it (`npm run bench` builds first).
const tool = resolve("dist/cmd/migrate/main.js");
/** After the naive rename's `migrate up` exits, the old release runs this long before the deploy replaces it. */
export const DEPLOY_GAP_MS = 5000;
const PLAIN = "bench-plain-update";

// Shaped like the project's users (migrations/000001_init_schema.up.sql).
const CREATE_USERS = `CREATE TABLE users (
  id SERIAL PRIMARY KEY,
  username VARCHAR(255) NOT NULL UNIQUE,
  password VARCHAR(255) NOT NULL,
  email_hash VARCHAR(64),
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
`;
const NAIVE_RENAME = `-- migrate:allow renaming-column "bench: the naive way, measured"
ALTER TABLE users RENAME COLUMN username TO login;
`;

export interface RenameStep extends PhaseFigures {
  name: string;
  contender: "A" | "B" | "limit";
  /** The process, start to exit, as a deploy waits for it. */
  wallMs: number;
  /** The step as the tool times it (its events), without process start and exit. */
  ownMs: number;
}

export interface RenameResult {
  rows: number;
  /** A's expand (its DDL, then its batched backfill), A's contract, B's rename, the plain UPDATE. */
  steps: RenameStep[];
  /** The generated backfill marker's options. */
  backfillOptions: string;
  batched: Rate;
  plain: Rate;
  /** B: the old release's failed statements from the rename to its deploy. */
  oldRelease: { failed: number; ms: number };
  sampleMs: number;
  invalid: string[];
}

interface Rate {
  rows: number;
  ms: number;
  perSecond: number;
}

const rate = (rows: number, ms: number): Rate => ({ rows, ms, perSecond: (rows * 1000) / ms });
const total = (errors: Map<string, number>) => [...errors.values()].reduce((a, b) => a + b, 0);
const stepOf = (
  name: string,
  contender: RenameStep["contender"],
  wallMs: number,
  ownMs: number,
  f: PhaseFigures | undefined,
): RenameStep => ({
  stallMs: 0,
  errors: new Map(),
  lockMs: 0,
  probes: 0,
  ...f,
  name,
  contender,
  wallMs,
  ownMs,
});
const probeOf = (url: string, rows: number, migrator: string) =>
  startProbe(url, { table: "users", rows, column: "username", migrator });

/**
 * users.username renamed to login on a `rows`-row table, each contender on a
 * fresh database (the table made by `migrate up 1`, filled by one INSERT,
 * vacuumed, checkpointed): A, the generated expand and contract; B, one
 * `ALTER TABLE … RENAME COLUMN` migration; and the limit for A's backfill
 * rate, one plain UPDATE. A probe (lib/probe.ts) watches each.
 */
export async function renameBench(adminUrl: string, rows: number): Promise<RenameResult> {
  const root = mkdtempSync(join(tmpdir(), "kbts-bench-rename-"));
  try {
    const zero = folder(root, "zero");
    const naive = folder(root, "naive");
    writeFileSync(join(naive, "000002_rename_username.up.sql"), NAIVE_RENAME);
    writeFileSync(
      join(naive, "000002_rename_username.down.sql"),
      "ALTER TABLE users RENAME COLUMN login TO username;\n",
    );
    const generate = ["create", "rename_username", "--dir", zero, "--expand", "rename-column"];
    const names = ["--table", "users", "--column", "username", "--to", "login"];
    await runTool([...generate, ...names, "--type", "VARCHAR(255)"], adminUrl);
    const expandFile = readdirSync(zero).find((f) => f.endsWith("_expand.up.sql"))!;
    const [ddl, fill] = readFileSync(join(zero, expandFile), "utf8").split("-- migrate:backfill");
    const a = await withDatabase(adminUrl, (url) => expandContract(url, zero, rows));
    const b = await withDatabase(adminUrl, (url) => naiveRename(url, naive, rows));
    const limit = await withDatabase(adminUrl, (url) => plainUpdate(url, naive, rows, ddl!));
    return {
      rows,
      steps: [...a.steps, ...b.steps, ...limit.steps],
      backfillOptions: fill!.split("\n")[0]!.trim() || "defaults: batch=1000 pause=0",
      batched: a.batched,
      plain: limit.plain,
      oldRelease: b.oldRelease,
      sampleMs: Math.max(a.sampleMs, b.sampleMs, limit.sampleMs),
      invalid: [...a.invalid, ...limit.invalid],
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * A: `up --phase expand` (DDL, then the batched backfill, the old release
 * reading username), the new release deployed (reading login), `up --phase
 * contract`; then no row without login and no username left.
 */
async function expandContract(url: string, dir: string, rows: number) {
  await setUp(url, dir, rows);
  const probe = await probeOf(url, rows, "migrate");
  probe.phase("expand");
  let batched = rate(0, 1);
  const expand = await runTool(["up", "--phase", "expand", "--dir", dir], url, (e) => {
    if (e.event === "backfill_progress") probe.phase("backfill");
    if (e.event === "backfill_finished") batched = rate(Number(e.rows), Number(e.ms));
  });
  probe.release("login");
  probe.phase("contract");
  const contract = await runTool(["up", "--phase", "contract", "--dir", dir], url);
  const { phases, sampleMs } = await probe.stop();
  const begun = expand.at("migration_started") ?? expand.started;
  const split = expand.at("backfill_progress") ?? expand.ended;
  const ended = expand.at("migration_finished") ?? expand.ended;
  const expandName = "A up --phase expand";
  const steps = [
    stepOf(
      `${expandName}: DDL, count of rows to fill`,
      "A",
      split - expand.started,
      split - begun,
      phases.get("expand"),
    ),
    stepOf(
      `${expandName}: the batched backfill`,
      "A",
      expand.ended - split,
      ended - split,
      phases.get("backfill"),
    ),
    stepOf("A up --phase contract", "A", contract.ms, contract.stepMs, phases.get("contract")),
  ];
  const invalid: string[] = [];
  if (batched.rows !== rows) invalid.push(`A's backfill filled ${batched.rows} rows of ${rows}`);
  const left = await one(url, (c) =>
    c.query<{ n: string; old: boolean }>(
      `SELECT count(*) FILTER (WHERE login IS NULL)::text AS n,
              EXISTS (SELECT FROM information_schema.columns
                       WHERE table_name = 'users' AND column_name = 'username') AS old
         FROM users`,
    ),
  );
  const { n, old } = left.rows[0]!;
  if (n !== "0" || old)
    invalid.push(
      `after A's contract: ${n} rows without login, username ${old ? "still there" : "gone"}`,
    );
  return { steps, batched, sampleMs, invalid };
}

/**
 * B: `up` of the rename while the old release (reading username) keeps
 * running until DEPLOY_GAP_MS after the process exits; its failures from
 * the first to the deploy.
 */
async function naiveRename(url: string, dir: string, rows: number) {
  await setUp(url, dir, rows);
  const probe = await probeOf(url, rows, "migrate");
  probe.phase("rename");
  const rename = await runTool(["up", "--dir", dir], url);
  probe.phase("old release");
  await wait(DEPLOY_GAP_MS);
  probe.release("login");
  const deployedAt = performance.now();
  const { phases, sampleMs } = await probe.stop();
  const name = "B up: one ALTER … RENAME COLUMN";
  const steps = [stepOf(name, "B", rename.ms, rename.stepMs, phases.get("rename"))];
  const failed = ["rename", "old release"].flatMap((l) => phases.get(l) ?? []);
  const first = Math.min(...failed.map((f) => f.errorSpan?.first ?? Infinity));
  const oldRelease = {
    failed: failed.reduce((n, f) => n + total(f.errors), 0),
    ms: Number.isFinite(first) ? deployedAt - first : 0,
  };
  return { steps, oldRelease, sampleMs };
}

/** The limit: the expand's DDL (`ddl`) applied in the setup, then one plain UPDATE of every row. */
async function plainUpdate(url: string, dir: string, rows: number, ddl: string) {
  await setUp(url, dir, rows, ddl);
  const probe = await probeOf(url, rows, PLAIN);
  probe.phase("plain");
  const client = new pg.Client({ connectionString: url, application_name: PLAIN });
  await client.connect();
  const started = performance.now();
  const r = await client.query("UPDATE users SET login = username").finally(() => client.end());
  const ms = performance.now() - started;
  const plain = rate(r.rowCount ?? 0, ms);
  const { phases, sampleMs } = await probe.stop();
  const name = "plain UPDATE users SET login = username (limit)";
  const steps = [stepOf(name, "limit", ms, ms, phases.get("plain"))];
  const invalid =
    plain.rows === rows ? [] : [`the plain UPDATE changed ${plain.rows} rows of ${rows}`];
  return { steps, plain, sampleMs, invalid };
}

function folder(root: string, name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "000001_create_users.up.sql"), CREATE_USERS);
  writeFileSync(join(dir, "000001_create_users.down.sql"), "DROP TABLE users;\n");
  return dir;
}

/**
 * The table by `migrate up 1`, `rows` users in one INSERT, then `sql` (the
 * plain UPDATE's expand DDL), vacuumed and analysed, dirty pages written out:
 * no contender pays for the setup.
 */
async function setUp(url: string, dir: string, rows: number, sql?: string) {
  await runTool(["up", "1", "--dir", dir], url);
  await one(url, async (c) => {
    await c.query(
      `INSERT INTO users (username, password, email_hash)
       SELECT 'user_' || g, 'scrypt$bench', md5(g::text) FROM generate_series(1, $1) AS g`,
      [rows],
    );
    if (sql) await c.query(sql);
    await c.query("VACUUM ANALYZE users");
    await c.query("CHECKPOINT").catch(() => undefined);
  });
}

type ToolEvent = Record<string, unknown> & { event: string };

interface ToolRun {
  started: number;
  ended: number;
  ms: number;
  /** When the first event of `name` arrived (performance.now()). */
  at(name: string): number | undefined;
  /** The last migration_finished's own ms. */
  stepMs: number;
}

/**
 * One run of the built tool, its events (`--events -`) handed to `onEvent`
 * as they come; throws on a non-zero exit, with its stderr.
 */
function runTool(args: string[], url: string, onEvent?: (e: ToolEvent) => void): Promise<ToolRun> {
  const events = args[0] === "up" ? ["--events", "-"] : [];
  const started = performance.now();
  const child = spawn(process.execPath, [tool, ...args, ...events], {
    env: { ...process.env, LOG_LEVEL: "warn", DATABASE_URL: url },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const seen = new Map<string, number>();
  let stepMs = 0;
  let err = "";
  let partial = "";
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  child.stdout.on("data", (c: Buffer) => {
    const lines = (partial + c.toString()).split("\n");
    partial = lines.pop()!;
    for (const line of lines.filter((l) => l.startsWith("{"))) {
      const e = JSON.parse(line) as ToolEvent;
      if (!seen.has(e.event)) seen.set(e.event, performance.now());
      if (e.event === "migration_finished") stepMs = Number(e.ms);
      onEvent?.(e);
    }
  });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      const ended = performance.now();
      if (code === 0)
        resolve({ started, ended, ms: ended - started, at: (n) => seen.get(n), stepMs });
      else reject(new Error(`migrate ${args.join(" ")} exited ${code}: ${err.trim()}`));
    });
  });
}
