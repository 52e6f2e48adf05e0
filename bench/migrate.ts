import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { withDatabase } from "./lib/db.js";

const COUNT = 300;
// The built tool, as deploy scripts run it (`npm run bench` builds first).
const tool = resolve("dist/cmd/migrate/main.js");

/** Wall time of one run of the built tool; throws on a non-zero exit. */
function timed(args: string[], env: NodeJS.ProcessEnv = {}): number {
  const started = performance.now();
  const run = spawnSync(process.execPath, [tool, ...args], {
    env: { ...process.env, LOG_LEVEL: "warn", ...env },
    encoding: "utf8",
  });
  const ms = performance.now() - started;
  if (run.status !== 0) throw new Error(`migrate ${args.join(" ")} failed: ${run.stderr}`);
  return ms;
}

const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * `migrate up` applying 300 small generated pairs (each in its own
 * transaction, with the lock, checksums and state table) against psql
 * applying the same up files in one session, each in its own transaction:
 * the limit for running the same SQL. Fresh databases for both, alternating,
 * median of three; `up --rehearse` of the same 300 before each `up` (a copy
 * made, every statement traced, the copy dropped). Then `status` with 300
 * applied and `--help` (median of 5), and `lint` over the 300 pairs (median of 3).
 */
export async function migrateBench(adminUrl: string) {
  const dir = mkdtempSync(join(tmpdir(), "kbts-bench-migrations-"));
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
    const script = join(dir, "all.psql");
    writeFileSync(script, files.map((f) => `BEGIN;\n\\i ${f}\nCOMMIT;\n`).join(""));
    const havePsql = spawnSync("psql", ["--version"]).status === 0;

    const up: number[] = [];
    const rehearse: number[] = [];
    const psql: number[] = [];
    const status: number[] = [];
    for (let round = 0; round < 3; round++) {
      await withDatabase(adminUrl, async (url) => {
        rehearse.push(timed(["up", "--rehearse", "--dir", dir], { DATABASE_URL: url }));
        up.push(timed(["up", "--dir", dir], { DATABASE_URL: url }));
        if (round === 0)
          for (let i = 0; i < 5; i++)
            status.push(timed(["status", "--dir", dir], { DATABASE_URL: url }));
      });
      if (!havePsql) continue;
      await withDatabase(adminUrl, async (url) => {
        const started = performance.now();
        execFileSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", script], {
          stdio: "ignore",
        });
        psql.push(performance.now() - started);
      });
    }
    const help = Array.from({ length: 5 }, () => timed(["--help"]));
    // lint without a database: the whole process, parser load included.
    const lint = Array.from({ length: 3 }, () => timed(["lint", "--dir", dir]));
    return {
      count: COUNT,
      upMs: median(up),
      rehearseMs: median(rehearse),
      psqlMs: havePsql ? median(psql) : undefined,
      statusMs: median(status),
      helpMs: median(help),
      lintMs: median(lint),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
