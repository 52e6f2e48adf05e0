import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPostgres } from "../internal/pkg/embedded_pg/embedded_pg.js";
import { createLogger } from "../internal/pkg/log/logger.js";
import { chainInProcess } from "./chain.js";
import { hashFieldOverGrpc, kmsInProcess, processesOverGrpc, type Paired } from "./kms.js";
import { migrateBench } from "./migrate.js";
import { DEPLOY_GAP_MS, renameBench } from "./rename.js";
import { PROBE_TIMEOUT_MS, SAMPLE_MS } from "./lib/probe.js";
import { usersBench } from "./users.js";
import { steadyRss } from "./steady.js";
import { memoryBench } from "./memory.js";
import { loginFloodBench } from "./logins.js";
import { reencryptBench } from "./reencrypt.js";
import { verifyBench } from "./verify.js";
import { withDatabase } from "./lib/db.js";
import type { LoadResult } from "./lib/load.js";
import type { Comparison } from "./lib/compare.js";
import { roundSpread } from "./lib/stats.js";

// Benchmarks print figures and ratios against a baseline measured in the same
// run; they never fail on time. DATABASE_URL picks the database, else an
// embedded one; BENCH_SECONDS sets each measurement's length (default 5),
// BENCH_ROUNDS how many alternating rounds the gRPC comparisons run (3),
// BENCH_KMS_ROUNDS those of the KMS in process (7);
// BENCH_REENCRYPT_USERS the users the re-encryption job moves (default
// 100 000), BENCH_VERIFY_USERS those `migrate verify --data` checks (default
// 100 000); BENCH_MIGRATE_ROUNDS the alternating rounds of `migrate up`
// against psql and node-pg-migrate (3); BENCH_RENAME_ROWS the rows of the
// zero-downtime rename's table (default 1 000 000); BENCH_STEADY_ROUNDS the
// rounds of BENCH_SECONDS the steady-memory run lasts (12: a minute at the
// default); BENCH_SETTLE_SECONDS how long the memory section waits after each
// flood before reading the server's memory again (30). `npm run bench --
// migrate kms` runs only the named sections (kms, chain, hash, steady,
// memory, users, logins, reencrypt, verify, migrate; rename: only migrate's
// zero-downtime rename).
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const kmsRounds = Number(process.env.BENCH_KMS_ROUNDS ?? 7);
const reencryptUsers = Number(process.env.BENCH_REENCRYPT_USERS ?? 100_000);
const verifyUsers = Number(process.env.BENCH_VERIFY_USERS ?? 100_000);
const renameRows = Number(process.env.BENCH_RENAME_ROWS ?? 1_000_000);
const steadyRounds = Number(process.env.BENCH_STEADY_ROUNDS ?? 12);
const settleSeconds = Number(process.env.BENCH_SETTLE_SECONDS ?? 30);
const only = process.argv.slice(2);
const want = (section: string) =>
  only.length === 0 || only.includes(section) || (section === "rename" && only.includes("migrate"));
if (want("reencrypt") && !(Number.isInteger(reencryptUsers) && reencryptUsers >= 1))
  throw new Error("BENCH_REENCRYPT_USERS: expected a whole number of users, at least 1");
if (want("verify") && !(Number.isInteger(verifyUsers) && verifyUsers >= 1))
  throw new Error("BENCH_VERIFY_USERS: expected a whole number of users, at least 1");
if (want("rename") && !(Number.isInteger(renameRows) && renameRows >= 1))
  throw new Error("BENCH_RENAME_ROWS: expected a whole number of rows, at least 1");
if (want("kms") && !(Number.isInteger(kmsRounds) && kmsRounds >= 1))
  throw new Error("BENCH_KMS_ROUNDS: expected a whole number of rounds, at least 1");
if (want("steady") && !(Number.isInteger(steadyRounds) && steadyRounds >= 2))
  throw new Error("BENCH_STEADY_ROUNDS: expected a whole number of rounds, at least 2");
if (want("memory") && !(Number.isFinite(settleSeconds) && settleSeconds >= 0))
  throw new Error("BENCH_SETTLE_SECONDS: expected a number of seconds, 0 or more");
let dir: string | undefined;
let stop = async () => {};
let url = process.env.DATABASE_URL;
if (!url) {
  dir = mkdtempSync(join(tmpdir(), "kbts-bench-"));
  const pg = await startEmbeddedPostgres(dir, createLogger({ level: "silent", format: "json" }));
  url = pg.url;
  stop = pg.stop;
}

try {
  const row = (
    name: string,
    r: Pick<LoadResult, "perSecond" | "p50ms" | "p99ms"> & { cpuUsPerCall?: number },
  ) =>
    `${name.padEnd(40)} ${r.perSecond.toFixed(0).padStart(8)} calls/s   p50 ${r.p50ms.toFixed(2)} ms   p99 ${r.p99ms.toFixed(2)} ms${r.cpuUsPerCall === undefined ? "" : `   CPU ${Number.isNaN(r.cpuUsPerCall) ? "n/a" : r.cpuUsPerCall.toFixed(1).padStart(6)} µs/call`}`;

  if (want("kms")) {
    const k = await withDatabase(url, (db) => kmsInProcess(db, kmsRounds));
    console.log(
      `\nKMS in process (ops/s): ours vs raw node:crypto (AES-256-GCM with AAD; HMAC-SHA256 for the blind index); ${kmsRounds} alternating rounds of 0.5 s, medians, and the spread of each round's ratio`,
    );
    const line = (op: string, p: Paired, raw = "raw") =>
      `${op.padEnd(18)} ours ${p.ours.toFixed(0).padStart(8)}   ${raw} ${p.raw.toFixed(0).padStart(8)}   ratio ${(p.ours / p.raw).toFixed(2)}  ${roundSpread(p.ratios)}`;
    for (const r of k.rows) {
      console.log(line(`encrypt ${r.size} B`, r.encrypt));
      console.log(line(`decrypt ${r.size} B`, r.decrypt));
    }
    console.log(line("blind index", k.hash, "raw HMAC"));
    console.log("goal: decrypt >= 0.9");
  }

  if (want("chain")) {
    const c = await chainInProcess();
    console.log(
      `\nThe middleware chain in process (HashField, handler answering at once, 32 in flight; CPU per call, median of ${c.rounds} rounds of ${c.calls})`,
    );
    console.log(`${"bare handler (limit)".padEnd(40)} ${c.bare.toFixed(2).padStart(6)} us`);
    for (const r of c.rows)
      console.log(
        `${r.name.padEnd(40)} ${r.us.toFixed(2).padStart(6)} us   ratio ${(r.us / c.bare).toFixed(1)}`,
      );
  }

  // How each comparison is printed: its servers' rows, then ratios of calls/s,
  // p99 and CPU per call between pairs of them.
  const heading = (title: string, c: Comparison) =>
    console.log(
      `\n${title}\ngenerator: ${c.generator}; ${rounds} alternating rounds of ${seconds} s, medians; CPU: the server process's user + system time over a round ÷ the calls it answered OK`,
    );
  // The ratio of the medians, then the lowest and highest ratio of calls/s
  // within one round: how far the machine moved the answer in this run.
  const ratio = (c: Comparison, of: string, to: string, goal = "") => {
    const a = c.results.get(of)!;
    const b = c.results.get(to)!;
    const each = a.rounds.flatMap((x) => {
      const y = b.rounds.find((r) => r.round === x.round);
      return y ? [x.perSecond / y.perSecond] : [];
    });
    return `${(a.perSecond / b.perSecond).toFixed(2)}${roundSpread(each)}   p99 ${(a.p99ms / b.p99ms).toFixed(2)}   CPU/call ${(a.cpuUsPerCall / b.cpuUsPerCall).toFixed(2)}${goal && `   (${goal})`}`;
  };
  const invalid = (c: Comparison) => {
    for (const problem of c.invalid) console.log(`!!! INVALID RUN: ${problem}`);
  };
  const compared = (title: string, c: Comparison) => {
    heading(title, c);
    console.log(row("bare @grpc/grpc-js, same query (limit)", c.results.get("bare")!));
    console.log(row("ours: full service, auth on, JWT", c.results.get("ours")!));
    console.log(`ratio ours/limit: ${ratio(c, "ours", "bare", "goals: >= 0.8, p99 <= 1.5")}`);
    invalid(c);
  };

  if (want("hash")) {
    const h = await withDatabase(url, (db) => hashFieldOverGrpc(db, seconds, rounds));
    heading(
      "HashField over gRPC, authentication on (a JWT on every call); each server in its own process",
      h,
    );
    console.log(row("bare @grpc/grpc-js, fixed reply, no work", h.results.get("bare")!));
    console.log(row("@grpc/grpc-js + protobuf-es, same work", h.results.get("grpc-js")!));
    console.log(row("node:http2 + protobuf-es, same work", h.results.get("http2")!));
    console.log(row("ours: full service, auth on, JWT", h.results.get("ours")!));
    console.log(
      row("ours, a line for failed calls only", h.results.get("ours, request_sample 0")!),
    );
    console.log(
      `ratio ours/node:http2 same work:    ${ratio(h, "ours", "http2", "goals: >= 0.8, p99 <= 1.5")}`,
    );
    console.log(
      `ratio the same, request_sample 0:   ${ratio(h, "ours, request_sample 0", "http2")}`,
    );
    console.log(`ratio ours/grpc-js same work:       ${ratio(h, "ours", "grpc-js")}`);
    console.log(
      `ratio node:http2/grpc-js same work: ${ratio(h, "http2", "grpc-js", "a hand-written transport earns its place at >= 1.3")}`,
    );
    console.log(`ratio ours/bare, no work:           ${ratio(h, "ours", "bare")}`);
    invalid(h);
    const p = await withDatabase(url, (db) => processesOverGrpc(db, seconds, rounds));
    heading(
      "HashField, the service as 2 processes (server.processes: 2) against 1 (CPU: the primary and its workers; h2load takes a core of the two here)",
      p,
    );
    console.log(row("1 process", p.results.get("1 process")!));
    console.log(row("2 processes", p.results.get("2 processes")!));
    console.log(`ratio 2/1: ${ratio(p, "2 processes", "1 process")}`);
    invalid(p);
  }

  if (want("steady")) {
    const s = await withDatabase(url, (db) => steadyRss(db, seconds, steadyRounds));
    console.log(
      `\nResident memory of one server under HashField at 32 streams (2 connections x 16), ${steadyRounds} rounds of ${seconds} s (goal: flat, no growth across rounds)`,
    );
    const mb = (x: number) => x.toFixed(0);
    console.log(
      `RSS MB: idle ${mb(s.rss[0]!)}, after each round ${s.rss.slice(1).map(mb).join(" ")}`,
    );
    const warm = s.rss.slice(1 + Math.floor(steadyRounds / 2));
    console.log(
      `second half: ${mb(Math.min(...warm))}-${mb(Math.max(...warm))} MB, last - first of it ${(warm.at(-1)! - warm[0]!).toFixed(1)} MB; calls/s per round ${s.rounds.map((r) => r.perSecond.toFixed(0)).join(" ")}`,
    );
    for (const problem of s.invalid) console.log(`!!! INVALID RUN: ${problem}`);
  }

  if (want("memory")) {
    const m = await withDatabase(url, (db) => memoryBench(db, settleSeconds * 1000));
    const mb = (x: number) => x.toFixed(0).padStart(5);
    console.log(
      `\nResident memory under 300 concurrent 3.9 MB EncryptField requests (a JWT on each), one flood after another on one server; in-flight budget ${m.budget} MiB; idle ${mb(m.idle)} MiB`,
    );
    console.log(
      `goals: peak <= idle + budget + 150 = ${mb(m.idle + m.budget + 150)} MiB; ${m.settleMs / 1000} s after, <= idle + 50 = ${mb(m.idle + 50)} MiB`,
    );
    console.log(`${"flood".padEnd(34)} before   peak  after   answers`);
    for (const r of m.rows) {
      const name = `${r.kind}, ${r.connections} connection${r.connections > 1 ? "s" : ""}`;
      console.log(
        `${name.padEnd(34)} ${mb(r.before)}  ${mb(r.peak)}  ${mb(r.after)}   ${r.answers}`,
      );
    }
  }

  if (want("users")) {
    const u = await withDatabase(url, (db) => usersBench(db, seconds, rounds));
    compared(
      "GetUser over gRPC, authentication on (limit: bare grpc-js in its own process, the same indexed query, no decryption)",
      u.get,
    );
    compared("LookupUser by email over gRPC, authentication on (the same limit)", u.lookup);
    console.log(
      `CreateUser in process, concurrency 32: ${u.createPerSecond.toFixed(0)} users/s (scrypt-bound: limits.password_hash_concurrency at once)`,
    );
  }

  if (want("logins")) {
    const l = await withDatabase(url, (db) => loginFloodBench(db, seconds));
    console.log(
      "\nA login flood (32 concurrent wrong passwords, one token) against another token's calls, one at a time",
    );
    const line = (name: string, r: { calls: number; p50ms: number }) =>
      `${name.padEnd(36)} ${String(r.calls).padStart(8)} calls    p50 ${r.p50ms.toFixed(2)} ms`;
    console.log(line("good login, idle", l.idle.login));
    console.log(line("good login, during the flood", l.during.login));
    console.log(line("good login, refusals-only flood", l.refusalsOnly));
    console.log(line("CreateUser, idle", l.idle.create));
    console.log(line("CreateUser, during the flood", l.during.create));
    console.log(row("VerifyPassword flood (all answers)", l.logins));
    console.log(
      `ratio p50 during/idle: good login ${(l.during.login.p50ms / l.idle.login.p50ms).toFixed(2)}, CreateUser ${(l.during.create.p50ms / l.idle.create.p50ms).toFixed(2)} (goal <= 2); a flood of refusals alone: ${(l.refusalsOnly.p50ms / l.idle.login.p50ms).toFixed(2)}`,
    );
    for (const problem of l.invalid) console.log(`!!! INVALID RUN: ${problem}`);
  }

  if (want("reencrypt")) {
    const r = await withDatabase(url, (db) => reencryptBench(url, db, reencryptUsers));
    const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const rate = (name: string, rows: number, s: number, perSecond: number) =>
      `${name.padEnd(36)} ${perSecond.toFixed(0).padStart(8)} rows/s   ${rows} rows in ${s.toFixed(2)} s`;
    console.log(
      `\nRe-encryption job: ${r.users} users (3 values each) from keys 1..3 to key 4, batches of 500, pause 0`,
    );
    console.log(
      `setup: sealing ${sec(r.setup.sealMs)}, INSERTs ${sec(r.setup.insertMs)}, VACUUM ANALYZE ${sec(r.setup.vacuumMs)}, copy ${sec(r.setup.copyMs)}`,
    );
    console.log(
      rate("plain batched UPDATE (limit)", r.limit.rows, r.limit.seconds, r.limit.perSecond),
    );
    console.log(
      rate("ours: the job, via the service", r.ours.rowsDone, r.ours.seconds, r.ours.perSecond),
    );
    console.log(
      `  (job's started_at..finished_at; seen FINISHED ${r.ours.observedSeconds.toFixed(2)} s after the start call, polling every 2 s)`,
    );
    console.log(
      `ratio ours/limit: ${(r.ours.perSecond / r.limit.perSecond).toFixed(2)} (goal >= 0.5)${r.invalid.length > 0 ? "   INVALID RUN, see below" : ""}`,
    );
    for (const problem of r.invalid) console.log(`!!! INVALID RUN: ${problem}`);
  }

  if (want("verify")) {
    const v = await withDatabase(url, (db) => verifyBench(db, verifyUsers));
    const rate = (name: string, r: { rows: number; seconds: number; perSecond: number }) =>
      `${name.padEnd(40)} ${r.perSecond.toFixed(0).padStart(8)} rows/s   ${r.rows} rows in ${r.seconds.toFixed(2)} s`;
    console.log(
      `\nmigrate verify --data: ${v.users} users (3 sealed values and 3 blind indexes each), batches of 1000`,
    );
    console.log(
      `setup: sealing ${(v.setup.sealMs / 1000).toFixed(1)} s, INSERTs ${(v.setup.insertMs / 1000).toFixed(1)} s, VACUUM ANALYZE ${(v.setup.vacuumMs / 1000).toFixed(1)} s`,
    );
    console.log(rate("plain SELECT, same columns (limit)", v.limit));
    console.log(rate("ours: verify --data, built tool", v.ours));
    console.log(
      `  (the process's wall time, start and KMS included: ${v.ours.wallSeconds.toFixed(2)} s)`,
    );
    console.log(
      `ratio ours/limit: ${(v.ours.perSecond / v.limit.perSecond).toFixed(2)}${v.invalid.length > 0 ? "   INVALID RUN, see below" : ""}`,
    );
    for (const problem of v.invalid) console.log(`!!! INVALID RUN: ${problem}`);
  }

  if (want("migrate")) {
    const m = await migrateBench(url);
    const ratio = (r: { median: number; each: number[] }) =>
      `${r.median.toFixed(2)} (rounds: ${r.each.map((x) => x.toFixed(2)).join(" ")})`;
    console.log(
      `\nmigrations: ${m.count} small generated pairs, built tool (dist/), ${m.rounds} alternating rounds, medians (ratios: of each round's)`,
    );
    console.log(`migrate up (process, lock, checksums)  ${(m.upMs / 1000).toFixed(2)} s`);
    if (m.psqlMs === undefined) console.log("psql not found: no limit measured");
    else {
      console.log(`psql, same files, one session (limit)  ${(m.psqlMs / 1000).toFixed(2)} s`);
      console.log(`ratio ours/limit: ${ratio(m.psqlRatio!)} (goal <= 1.3)`);
    }
    console.log(
      `node-pg-migrate runner, same files     ${(m.nodePgMigrateMs / 1000).toFixed(2)} s`,
    );
    console.log(`ratio ours/node-pg-migrate: ${ratio(m.nodePgMigrateRatio)} (goal <= 1)`);
    console.log(
      `migrate up --rehearse (copy, traced)   ${(m.rehearseMs / 1000).toFixed(2)} s, ratio rehearse/up: ${(m.rehearseMs / m.upMs).toFixed(2)}`,
    );
    console.log(
      `migrate status with ${m.count} applied      ${(m.statusMs / 1000).toFixed(2)} s (goal < 0.3 s)`,
    );
    console.log(
      `migrate --help                         ${(m.helpMs / 1000).toFixed(2)} s (goal < 0.2 s)`,
    );
    console.log(
      `migrate lint over ${m.count} pairs            ${(m.lintMs / 1000).toFixed(2)} s (goal < 2 s)`,
    );
    const p = m.product;
    console.log(
      `migrate lint, product-shaped history    ${(p.lintMs / 1000).toFixed(2)} s for ${p.count} pairs, ${Math.round(p.bytes / 1024)} kB (goal < 2 s)`,
    );
  }

  if (want("rename")) {
    const r = await renameBench(url, renameRows);
    const ms = (x: number) => x.toFixed(0);
    console.log(
      `\nzero-downtime rename of users.username (VARCHAR(255)) to login, ${r.rows} rows, built tool, each contender on a fresh database`,
    );
    console.log(
      `probe: own connection, a point UPDATE (of updated_at) and a point SELECT of the column every ~5 ms, statement_timeout ${PROBE_TIMEOUT_MS} ms; stall: from a statement's start to the next answer of its kind (one cancelled by the timeout is sent again, same row)`,
    );
    console.log(
      `lock: the migrator's locks on the table that block writes (SHARE and stronger), pg_locks sampled from another connection every ${SAMPLE_MS} ms (mean ${r.sampleMs.toFixed(1)} ms), first sample seeing one to the first not`,
    );
    console.log(
      `${"".padEnd(48)} wall s  own ms  lock ms (mode)           stall ms  probe errors (of statements)`,
    );
    for (const s of r.steps) {
      const lock = s.lockMs > 0 ? `${ms(s.lockMs)} (${s.lockMode})` : `< ${SAMPLE_MS} (none seen)`;
      const errors = [...s.errors].map(([m, n]) => `${n}x ${m}`).join("; ") || "0";
      console.log(
        `${s.name.padEnd(48)} ${(s.wallMs / 1000).toFixed(2).padStart(6)} ${ms(s.ownMs).padStart(7)}  ${lock.padEnd(25)}${ms(s.stallMs).padStart(8)}  ${errors} (of ${s.probes})`,
      );
    }
    console.log(
      `B: the old release's statements failed ${r.oldRelease.failed} times over ${(r.oldRelease.ms / 1000).toFixed(2)} s, from the rename to its deploy (simulated: ${DEPLOY_GAP_MS / 1000} s after \`up\` exited)`,
    );
    const rate = (name: string, x: { rows: number; ms: number; perSecond: number }) =>
      `${name.padEnd(48)} ${x.perSecond.toFixed(0).padStart(8)} rows/s   ${x.rows} rows in ${(x.ms / 1000).toFixed(2)} s`;
    console.log(rate("backfill as one plain UPDATE (limit)", r.plain));
    console.log(`${rate(`ours, batched (${r.backfillOptions})`, r.batched)} (its own figure)`);
    const stall = (c: string) =>
      Math.max(...r.steps.filter((s) => s.contender === c).map((s) => s.stallMs));
    console.log(
      `ratio ours/limit: ${(r.batched.perSecond / r.plain.perSecond).toFixed(2)} rows/s; longest probe stall, A's ${ms(stall("A"))} ms / the plain UPDATE's ${ms(stall("limit"))} ms: ${(stall("A") / stall("limit")).toFixed(3)} (it locks every row till it commits: row locks, not in pg_locks)`,
    );
    for (const problem of r.invalid) console.log(`!!! INVALID RUN: ${problem}`);
  }
} finally {
  await stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
