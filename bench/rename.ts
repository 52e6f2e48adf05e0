import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as wait } from "node:timers/promises";
import pg from "pg";
import { one, withDatabase } from "./lib/db.js";
import { startProbe, type PhaseFigures, type Probe } from "./lib/probe.js";

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

/**
 * users.username renamed to login on a `rows`-row table, each contender on a
 * fresh database (the table made by `migrate up 1`, filled by one INSERT,
 * vacuumed, checkpointed): A, the generated expand and contract
 * (`create --expand rename-column`, `up --phase expand` with its batched
 * backfill, the new release deployed, `up --phase contract`); B, one
 * `ALTER TABLE … RENAME COLUMN` migration while the old release keeps
 * running until DEPLOY_GAP_MS after it; and the limit for the backfill's
 * rate: the same expand DDL, then one plain `UPDATE users SET login =
 * username`. A probe (lib/probe.ts) watches each.
 */
export async function renameBench(adminUrl: string, rows: number): Promise<RenameResult> {
  const root = mkdtempSync(join(tmpdir(), "kbts-bench-rename-"));
  const invalid: string[] = [];
  const steps: RenameStep[] = [];
  let sampleMs = 0;
  const watch = (url: string, migrator: string) =>
    startProbe(url, { table: "users", rows, column: "username", migrator });
  const stopped = async (probe: Probe) => {
    const r = await probe.stop();
    sampleMs = Math.max(sampleMs, r.sampleMs);
    return r.phases;
  };
  const step = (s: Omit<RenameStep, keyof PhaseFigures>, f: PhaseFigures | undefined) =>
    steps.push({ stallMs: 0, errors: new Map(), lockMs: 0, probes: 0, ...f, ...s });
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
    const backfillOptions = fill!.split("\n")[0]!.trim() || "defaults: batch=1000 pause=0";

    // A: expand and its backfill, the new release deployed, contract.
    let batched = rate(0, 1);
    await withDatabase(adminUrl, async (url) => {
      await setUp(url, zero, rows);
      const probe = await watch(url, "migrate");
      probe.phase("expand");
      const expand = await runTool(["up", "--phase", "expand", "--dir", zero], url, (e) => {
        if (e.event === "backfill_progress") probe.phase("backfill");
        if (e.event === "backfill_finished") batched = rate(Number(e.rows), Number(e.ms));
      });
      probe.release("login");
      probe.phase("contract");
      const contract = await runTool(["up", "--phase", "contract", "--dir", zero], url);
      const phases = await stopped(probe);
      const begun = expand.at("migration_started") ?? expand.started;
      const split = expand.at("backfill_progress") ?? expand.ended;
      const ended = expand.at("migration_finished") ?? expand.ended;
      step(
        {
          name: "A up --phase expand: DDL, count of rows to fill",
          contender: "A",
          wallMs: split - expand.started,
          ownMs: split - begun,
        },
        phases.get("expand"),
      );
      step(
        {
          name: "A up --phase expand: the batched backfill",
          contender: "A",
          wallMs: expand.ended - split,
          ownMs: ended - split,
        },
        phases.get("backfill"),
      );
      step(
        {
          name: "A up --phase contract",
          contender: "A",
          wallMs: contract.ms,
          ownMs: contract.stepMs,
        },
        phases.get("contract"),
      );
      if (batched.rows !== rows)
        invalid.push(`A's backfill filled ${batched.rows} rows of ${rows}`);
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
    });

    // B: the rename in one migration, the old release running until its deploy.
    let oldRelease = { failed: 0, ms: 0 };
    await withDatabase(adminUrl, async (url) => {
      await setUp(url, naive, rows);
      const probe = await watch(url, "migrate");
      probe.phase("rename");
      const rename = await runTool(["up", "--dir", naive], url);
      probe.phase("old release");
      await wait(DEPLOY_GAP_MS);
      probe.release("login");
      const deployedAt = performance.now();
      const phases = await stopped(probe);
      step(
        {
          name: "B up: one ALTER … RENAME COLUMN",
          contender: "B",
          wallMs: rename.ms,
          ownMs: rename.stepMs,
        },
        phases.get("rename"),
      );
      const failed = ["rename", "old release"].flatMap((l) => phases.get(l) ?? []);
      const first = Math.min(...failed.map((f) => f.errorSpan?.first ?? Infinity));
      oldRelease = {
        failed: failed.reduce((n, f) => n + total(f.errors), 0),
        ms: Number.isFinite(first) ? deployedAt - first : 0,
      };
    });

    // The limit: the expand's DDL, then the backfill as one plain UPDATE.
    let plain = rate(0, 1);
    await withDatabase(adminUrl, async (url) => {
      await setUp(url, naive, rows, ddl);
      const probe = await watch(url, PLAIN);
      probe.phase("plain");
      const client = new pg.Client({ connectionString: url, application_name: PLAIN });
      await client.connect();
      const started = performance.now();
      const r = await client.query("UPDATE users SET login = username").finally(() => client.end());
      const ms = performance.now() - started;
      plain = rate(r.rowCount ?? 0, ms);
      const phases = await stopped(probe);
      const name = "plain UPDATE users SET login = username (limit)";
      step({ name, contender: "limit", wallMs: ms, ownMs: ms }, phases.get("plain"));
      if (plain.rows !== rows)
        invalid.push(`the plain UPDATE changed ${plain.rows} rows of ${rows}`);
    });
    return { rows, steps, backfillOptions, batched, plain, oldRelease, sampleMs, invalid };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
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
