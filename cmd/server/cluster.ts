import cluster, { type Worker } from "node:cluster";
import { durationMs } from "@bufbuild/protobuf/wkt";
import type { Config } from "../../internal/conf/load.js";
import { startDatabase } from "../../internal/data/data.js";
import type { Logger } from "../../internal/pkg/log/logger.js";

/** What a worker tells the primary: it serves, or it leaves with this exit code. */
export type WorkerNews =
  { kind: "listening"; grpc: number; http: number } | { kind: "leaving"; code: number };

/** The longest wait before a worker that keeps failing is started again. */
const MAX_BACKOFF_MS = 30_000;

/**
 * Several server processes behind the same two ports (server.processes):
 * Node's cluster, where this primary holds the listening sockets and hands
 * connections to the workers in turn. The primary serves nothing itself: it
 * starts the embedded PostgreSQL when no database is configured (the
 * workers get its address), forks the workers, forwards SIGTERM, SIGINT and
 * SIGHUP, replaces a worker that dies once the service is up (waiting longer
 * each time one fails in a row), and exits once they all have (those that
 * do not within shutdown_timeout and a margin are killed). A worker that
 * fails before the service is first up stops the start-up (exit 1): it would
 * fail again.
 */
export async function runPrimary(conf: Config, log: Logger, processes: number): Promise<void> {
  let stopping: string | undefined;
  let failed = false;
  let up = false;
  const workers = new Map<Worker, { served: boolean; code: number | undefined }>();
  let allGone = () => undefined as void;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = why;
    for (const w of workers.keys()) w.process.kill("SIGTERM");
    const graceMs = durationMs(conf.server!.shutdownTimeout!) + 10_000;
    setTimeout(() => {
      for (const w of workers.keys()) w.process.kill("SIGKILL");
    }, graceMs).unref();
    if (workers.size === 0) allGone();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // Only to workers that serve: one still loading has no handler yet, and
  // the signal would kill it.
  process.on("SIGHUP", () => {
    for (const [w, s] of workers) if (s.served) w.process.kill("SIGHUP");
  });

  let database: Awaited<ReturnType<typeof startDatabase>>;
  try {
    database = await startDatabase(conf.data!.database!.source, log);
  } catch (err) {
    log.fatal({ err: { message: (err as Error).message } }, "start-up failed");
    process.exitCode = 1;
    return;
  }
  // The workers read the config and the environment as this process did;
  // only the embedded database's address is news to them (a DATABASE_URL
  // set here beside the file's direct_source would be refused).
  const env = database.embedded ? { DATABASE_URL: database.url } : {};
  let listening = 0;
  let backoffMs = 500;
  const done = new Promise<void>((resolve) => {
    allGone = resolve;
    const fork = () => {
      if (stopping) return;
      const worker = cluster.fork(env);
      const state = { served: false, code: undefined as number | undefined };
      workers.set(worker, state);
      worker.on("message", (m: WorkerNews) => {
        if (m?.kind === "leaving") state.code = m.code;
        if (m?.kind !== "listening" || state.served) return;
        state.served = true;
        backoffMs = 500;
        if (!up && ++listening === processes) {
          up = true;
          log.info({ grpc: m.grpc, http: m.http, processes }, "all processes listening");
        }
      });
      worker.on("exit", (code, signal) => {
        workers.delete(worker);
        // Its own word first: Node ends a worker with 0 when it disconnects.
        const exitCode = state.code ?? code;
        if (stopping) {
          // Stopped by our SIGTERM before it could handle it: a clean stop.
          if (exitCode !== 0 && signal !== "SIGTERM") failed = true;
        } else if (!up) {
          failed = true;
          log.fatal(
            { worker: worker.id, code: exitCode, signal },
            "a server process failed to start",
          );
          stop("a server process failed to start");
        } else {
          log.error(
            { worker: worker.id, code: exitCode, signal, retryMs: backoffMs },
            "a server process died; replacing it",
          );
          setTimeout(fork, backoffMs).unref();
          if (!state.served) backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
        }
        if (workers.size === 0 && stopping) resolve();
      });
    };
    for (let i = 0; i < processes; i++) fork();
    if (stopping) resolve();
  });
  log.info(
    { processes, database: database.embedded ? "embedded" : "external" },
    "server processes starting",
  );
  await done;
  await database.embedded?.stop().catch((err: unknown) => {
    log.error(
      { err: { message: (err as Error).message } },
      "stopping the embedded PostgreSQL failed",
    );
    failed = true;
  });
  log.info({ signal: stopping }, "stopped");
  process.exitCode = failed ? 1 : 0;
}
