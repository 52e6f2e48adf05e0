import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { withDatabase } from "./lib/db.js";
import { median } from "./lib/stats.js";

const COUNT = 300;
// coder's published history has 362 pairs: a product schema grown over years.
const PRODUCT_COUNT = 362;
// The built tool, as deploy scripts run it (`npm run bench` builds first).
const tool = resolve("dist/cmd/migrate/main.js");

/** Wall time of one run of the built tool; throws on an exit code not in `ok`. */
function timed(args: string[], env: NodeJS.ProcessEnv = {}, ok = [0]): number {
  const started = performance.now();
  const run = spawnSync(process.execPath, [tool, ...args], {
    env: { ...process.env, LOG_LEVEL: "warn", ...env },
    encoding: "utf8",
  });
  const ms = performance.now() - started;
  if (!ok.includes(run.status ?? -1))
    throw new Error(`migrate ${args.join(" ")} failed: ${run.stderr}`);
  return ms;
}

// node-pg-migrate's own runner on the same folder, as a program using its
// API would run it: its grouped SQL loader (the CLI cannot select it), each
// migration in its own transaction as ours, its lock and pgmigrations.
const NODE_PG_MIGRATE = `
import { runner } from "node-pg-migrate";
const quiet = () => undefined;
await runner({
  databaseUrl: process.env.DATABASE_URL,
  dir: process.argv[1],
  direction: "up",
  migrationsTable: "pgmigrations",
  singleTransaction: false,
  migrationLoaderStrategies: [{ extensions: [".sql"], loader: "sql" }],
  logger: { debug: quiet, info: quiet, warn: quiet, error: console.error },
});`;

/** Wall time of one process: `node -e` of node-pg-migrate's runner on `dir`. */
function timedNodePgMigrate(dir: string, url: string): number {
  const started = performance.now();
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", NODE_PG_MIGRATE, dir], {
    env: { ...process.env, DATABASE_URL: url },
    encoding: "utf8",
  });
  const ms = performance.now() - started;
  if (run.status !== 0) throw new Error(`node-pg-migrate up failed: ${run.stderr}`);
  return ms;
}

/**
 * `migrate up` applying 300 small generated pairs (each in its own
 * transaction, with the lock, checksums and state table) against psql
 * applying the same up files in one session, each in its own transaction
 * (the limit for running the same SQL), and against node-pg-migrate's runner
 * on the same folder. Fresh databases for each, alternating, BENCH_MIGRATE_ROUNDS
 * rounds (default 3): medians, and the median of each round's ratios.
 * `up --rehearse` of the same 300 in each round, on a fresh database too (a
 * copy made, every statement traced, the copy dropped). Then `status` with
 * 300 applied and `--help` (median of 5), and `lint` over the 300 pairs
 * (median of 3).
 */
export async function migrateBench(adminUrl: string) {
  const root = mkdtempSync(join(tmpdir(), "kbts-bench-migrations-"));
  // The folder holds only migrations: node-pg-migrate would load anything else.
  const dir = join(root, "migrations");
  mkdirSync(dir);
  const rounds = Number(process.env.BENCH_MIGRATE_ROUNDS ?? 3);
  if (!(Number.isInteger(rounds) && rounds >= 1))
    throw new Error("BENCH_MIGRATE_ROUNDS: expected a whole number of rounds, at least 1");
  try {
    const files: string[] = [];
    for (let i = 1; i <= COUNT; i++) {
      const name = `${String(i).padStart(6, "0")}_bench_${i}`;
      const up = join(dir, `${name}.up.sql`);
      writeFileSync(
        up,
        `CREATE TABLE bench_${i} (id int PRIMARY KEY, note text);\nCREATE INDEX bench_${i}_note ON bench_${i} (note);\n`,
      );
      writeFileSync(join(dir, `${name}.down.sql`), `DROP TABLE IF EXISTS bench_${i};\n`);
      files.push(up);
    }
    const script = join(root, "all.psql");
    writeFileSync(script, files.map((f) => `BEGIN;\n\\i ${f}\nCOMMIT;\n`).join(""));
    const havePsql = spawnSync("psql", ["--version"]).status === 0;

    const up: number[] = [];
    const rehearse: number[] = [];
    const psql: number[] = [];
    const npm: number[] = [];
    const status: number[] = [];
    // Each on a fresh database, in an order rotated from round to round:
    // whoever runs first meets what the round before left (the rehearsal's
    // dropped copy, a checkpoint).
    const contenders = [
      () =>
        withDatabase(adminUrl, (url) => {
          up.push(timed(["up", "--dir", dir], { DATABASE_URL: url }));
          if (status.length === 0)
            for (let i = 0; i < 5; i++)
              status.push(timed(["status", "--dir", dir], { DATABASE_URL: url }));
        }),
      () => withDatabase(adminUrl, (url) => void npm.push(timedNodePgMigrate(dir, url))),
      ...(havePsql
        ? [
            () =>
              withDatabase(adminUrl, (url) => {
                const started = performance.now();
                execFileSync(
                  "psql",
                  ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", script],
                  { stdio: "ignore" },
                );
                psql.push(performance.now() - started);
              }),
          ]
        : []),
    ];
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < contenders.length; i++)
        await contenders[(round + i) % contenders.length]!();
      // On a database of its own: the copy it makes and drops would slow
      // whatever ran on the same server right after it.
      await withDatabase(adminUrl, (url) => {
        rehearse.push(timed(["up", "--rehearse", "--dir", dir], { DATABASE_URL: url }));
      });
    }
    // Each round's ratio, and their median.
    const ratios = (base: number[]) => {
      const each = up.map((u, i) => u / base[i]!);
      return { median: median(each), each };
    };
    const help = Array.from({ length: 5 }, () => timed(["--help"]));
    // lint without a database: the whole process, parser load included.
    const lint = Array.from({ length: 3 }, () => timed(["lint", "--dir", dir]));
    const product = mkdtempSync(join(tmpdir(), "kbts-bench-product-"));
    let productBytes = 0;
    let productLint: number[];
    try {
      productBytes = writeProductHistory(product);
      // Exit 1 is expected: a grown history has findings.
      productLint = Array.from({ length: 3 }, () => timed(["lint", "--dir", product], {}, [0, 1]));
    } finally {
      rmSync(product, { recursive: true, force: true });
    }
    return {
      count: COUNT,
      rounds,
      upMs: median(up),
      rehearseMs: median(rehearse),
      psqlMs: havePsql ? median(psql) : undefined,
      psqlRatio: havePsql ? ratios(psql) : undefined,
      nodePgMigrateMs: median(npm),
      nodePgMigrateRatio: ratios(npm),
      statusMs: median(status),
      helpMs: median(help),
      lintMs: median(lint),
      product: { count: PRODUCT_COUNT, bytes: productBytes, lintMs: median(productLint) },
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * A history shaped like a product's (coder's is 362 pairs): per migration a
 * mix of what such files hold: enums, wide tables with constraints and
 * foreign keys, indexes, plpgsql trigger functions, triggers, views,
 * comments, column changes. Returns the bytes written (up files).
 */
function writeProductHistory(dir: string): number {
  let bytes = 0;
  for (let i = 1; i <= PRODUCT_COUNT; i++) {
    const t = `entity_${i}`;
    const parent = i > 1 ? `entity_${i - 1}` : undefined;
    const columns = Array.from({ length: 8 + (i % 8) }, (_, c) =>
      c % 3 === 0 ? `  attr_${c} text NOT NULL DEFAULT ''` : `  attr_${c} bigint`,
    );
    const up = [
      `CREATE TYPE ${t}_status AS ENUM ('pending', 'running', 'succeeded', 'failed', 'canceled');`,
      `CREATE TABLE ${t} (`,
      "  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),",
      parent ? `  ${parent}_id uuid REFERENCES ${parent} (id) ON DELETE CASCADE,` : "",
      `  status ${t}_status NOT NULL DEFAULT 'pending',`,
      "  created_at timestamptz NOT NULL DEFAULT now(),",
      "  updated_at timestamptz NOT NULL DEFAULT now(),",
      `${columns.join(",\n")},`,
      `  CONSTRAINT ${t}_attr_0_len CHECK (length(attr_0) < 256)`,
      ");",
      parent ? `CREATE INDEX ${t}_parent ON ${t} (${parent}_id);` : "",
      `CREATE INDEX ${t}_status_created ON ${t} (status, created_at DESC) WHERE status <> 'succeeded';`,
      `CREATE FUNCTION ${t}_touch() RETURNS trigger LANGUAGE plpgsql AS $$`,
      "BEGIN",
      "  IF NEW.status IS DISTINCT FROM OLD.status THEN",
      "    NEW.updated_at = now();",
      "  END IF;",
      "  RETURN NEW;",
      "END;",
      "$$;",
      `CREATE TRIGGER ${t}_touch BEFORE UPDATE ON ${t} FOR EACH ROW EXECUTE FUNCTION ${t}_touch();`,
      `CREATE VIEW ${t}_active AS SELECT id, status, created_at FROM ${t} WHERE status IN ('pending', 'running');`,
      `COMMENT ON TABLE ${t} IS 'Entity ${i}: generated for the lint benchmark';`,
      parent ? `ALTER TABLE ${parent} ADD COLUMN note_${i} text;` : "",
      parent && i % 5 === 0 ? `ALTER TABLE ${parent} ALTER COLUMN attr_1 TYPE numeric;` : "",
      "",
    ]
      .filter((line) => line !== "")
      .join("\n");
    const name = `${String(i).padStart(6, "0")}_product_${i}`;
    writeFileSync(join(dir, `${name}.up.sql`), `${up}\n`);
    writeFileSync(
      join(dir, `${name}.down.sql`),
      `DROP VIEW ${t}_active;\nDROP TABLE ${t};\nDROP FUNCTION ${t}_touch();\nDROP TYPE ${t}_status;\n`,
    );
    bytes += Buffer.byteLength(up) + 1;
  }
  return bytes;
}
