import cluster, { type Worker } from "node:cluster";
import type { Config } from "../../internal/conf/load.js";
import { startDatabase } from "../../internal/data/data.js";
import type { Logger } from "../../internal/pkg/log/logger.js";

/** What a worker tells the primary once it serves. */
export interface Listening {
  kind: "listening";
  grpc: number;
  http: number;
}

/**
 * Several server processes behind the same two ports (server.processes):
 * Node's cluster, where this primary holds the listening sockets and hands
 * connections to the workers in turn. The primary serves nothing itself: it
 * starts the embedded PostgreSQL when no database is configured (the
 * workers get its address), forks the workers, forwards SIGTERM, SIGINT and
 * SIGHUP, replaces a worker that dies while serving, and exits once they
 * all have. A worker that fails to start stops the whole start-up (exit 1):
 * it would fail again.
 */
export async function runPrimary(conf: Config, log: Logger, processes: number): Promise<void> {
  let stopping: string | undefined;
  const workers = new Set<Worker>();
  const signal = (s: NodeJS.Signals) => {
    for (const w of workers) w.process.kill(s);
  };
  process.on("SIGTERM", () => {
    stopping ??= "SIGTERM";
    signal("SIGTERM");
  });
  process.on("SIGINT", () => {
    stopping ??= "SIGINT";
    signal("SIGTERM");
  });
  process.on("SIGHUP", () => signal("SIGHUP"));

  let database: Awaited<ReturnType<typeof startDatabase>>;
  try {
    database = await startDatabase(conf.data!.database!.source, log);
  } catch (err) {
    log.fatal({ err: { message: (err as Error).message } }, "start-up failed");
    process.exitCode = 1;
    return;
  }
  if (stopping) {
    // Asked to stop while the database started: nothing to fork.
    await database.embedded?.stop();
    process.exitCode = 0;
    return;
  }
  const env = { DATABASE_URL: database.url };
  let failed = false;
  let listening = 0;
  const done = new Promise<void>((resolve) => {
    const fork = () => {
      const worker = cluster.fork(env);
      let served = false;
      workers.add(worker);
      worker.on("message", (m: Listening) => {
        if (m?.kind !== "listening" || served) return;
        served = true;
        if (++listening === processes) {
          log.info({ grpc: m.grpc, http: m.http, processes }, "all processes listening");
        }
      });
      worker.on("exit", (code, sig) => {
        workers.delete(worker);
        if (!stopping && !served) {
          // It would fail again: stop the others rather than fork for ever.
          failed = true;
          stopping = "a worker failed to start";
          log.fatal({ worker: worker.id, code, signal: sig }, "a server process failed to start");
          signal("SIGTERM");
        } else if (!stopping) {
          log.error(
            { worker: worker.id, code, signal: sig },
            "a server process died; replacing it",
          );
          fork();
        } else if (code !== 0) {
          failed = true;
        }
        if (workers.size === 0 && stopping) resolve();
      });
    };
    for (let i = 0; i < processes; i++) fork();
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
