import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { withDatabase } from "./lib/db.js";

const COUNT = 300;

/**
 * `migrate up` applying 300 small generated pairs (each in its own
 * transaction, with the lock, checksums and state table), against psql
 * applying the same up files in one session, each in its own transaction:
 * the limit for running the same SQL. Then `migrate status` with 300 applied.
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
    const ours = await withDatabase(adminUrl, (url) => {
      const started = performance.now();
      const run = spawnSync(
        process.execPath,
        ["--import", "tsx", resolve("cmd/migrate/main.ts"), "up", "--dir", dir],
        {
          env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: "warn" },
          encoding: "utf8",
        },
      );
      const ms = performance.now() - started;
      if (run.status !== 0) throw new Error(`migrate up failed: ${run.stderr}`);
      const statusStarted = performance.now();
      const status = spawnSync(
        process.execPath,
        ["--import", "tsx", resolve("cmd/migrate/main.ts"), "status", "--dir", dir],
        {
          env: { ...process.env, DATABASE_URL: url },
          encoding: "utf8",
        },
      );
      if (status.status !== 0) throw new Error(`migrate status failed: ${status.stderr}`);
      return { upMs: ms, statusMs: performance.now() - statusStarted };
    });
    const script = join(dir, "all.psql");
    writeFileSync(script, files.map((f) => `BEGIN;\n\\i ${f}\nCOMMIT;\n`).join(""));
    let psqlMs: number | undefined;
    try {
      execFileSync("psql", ["--version"], { stdio: "ignore" });
      psqlMs = await withDatabase(adminUrl, (url) => {
        const started = performance.now();
        execFileSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", script], {
          stdio: "ignore",
        });
        return performance.now() - started;
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    return { count: COUNT, ...ours, psqlMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
