#!/usr/bin/env node
// First, before anything else loads: an older Node is refused in one line.
import "../../internal/pkg/cli/node_version.js";
import cluster from "node:cluster";
import module from "node:module";
import { Command } from "commander";
import type { Config } from "../../internal/conf/load.js";
import type { Logger } from "../../internal/pkg/log/logger.js";
import { runCli } from "../../internal/pkg/cli/cli.js";
import type { WorkerNews } from "./cluster.js";

// Exit codes: 0 stopped cleanly, 1 failed or had to cut in-flight calls,
// 2 bad usage or configuration.
const program = new Command("server")
  .usage("[-conf PATH]")
  .option("--conf <path>", "config file", "configs/config.yaml");
await runCli(program, process.argv.slice(2), (message) => {
  process.stderr.write(`server: ${message}\n`);
  process.exit(2);
});
const options = program.opts<{ conf: string }>();

// The service's modules load once the command line is read: `--help` and a
// usage error answer without them. They are compiled once and then read back
// from V8's code cache (Node's default place, under the temporary directory,
// keyed by Node's version and each file's content; NODE_DISABLE_COMPILE_CACHE=1
// turns it off): about 60 ms (7 %) less from start to listening here
// (docs/development.md, Speed). migrate and kms load too little to gain.
module.enableCompileCache();
const { ConfigError, loadConfig } = await import("../../internal/conf/load.js");
const { createLogger } = await import("../../internal/pkg/log/logger.js");

let conf: Config;
try {
  conf = loadConfig(options.conf);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(2);
}

const processes = conf.server!.processes;
const log = createLogger({
  level: conf.log?.level ?? "info",
  format: conf.log?.format ?? "auto",
  // The processes share stdout: no write of one may cut a line of another's.
  shared: processes > 1,
});
if (processes > 1 && cluster.isPrimary)
  await (await import("./cluster.js")).runPrimary(conf, log, processes);
else await run(conf, log);

async function run(conf: Config, log: Logger): Promise<void> {
  // Signals are handled from the first moment: one that lands while we are
  // still starting stops the service as soon as it is up, never half-way.
  // A migration in flight is stopped at once (migrateOnStart), not awaited.
  let signalled: string | undefined;
  const starting = new AbortController();
  let stop: (signal: string) => void = (signal) => {
    signalled ??= signal;
    starting.abort(signal);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // SIGHUP: new certificates for new connections, none dropped; a bad file
  // keeps the current ones. (Left unhandled, it would kill the process; one
  // during start-up waits for it.)
  let reloadPending = false;
  let reload = () => {
    reloadPending = true;
  };
  process.on("SIGHUP", () => reload());

  let app;
  try {
    const { wireApp } = await import("./wire.js");
    app = await wireApp(conf, log, { signal: starting.signal });
  } catch (err) {
    // By name: importing the class here could fail as the start-up did.
    if ((err as Error).name === "MigrationsStoppedError") {
      // Stopped as asked (exit 0, as a stop once serving is): what stands is in the message.
      log.warn({ signal: signalled, err: { message: (err as Error).message } }, "start-up stopped");
      process.exitCode = 0;
      leave(log);
      return;
    }
    log.fatal({ err: { message: (err as Error).message } }, "start-up failed");
    process.exitCode = 1;
    leave(log);
    return;
  }
  const running = app;
  if (cluster.isWorker) {
    const listening: WorkerNews = { kind: "listening", grpc: app.grpcPort, http: app.httpPort };
    process.send?.(listening);
  }
  reload = () => {
    try {
      if (running.reloadTls()) log.info({ signal: "SIGHUP" }, "TLS certificates reloaded");
      else log.info({ signal: "SIGHUP" }, "SIGHUP ignored: TLS is off");
    } catch (err) {
      log.error(
        { err: { message: (err as Error).message } },
        "TLS reload failed; keeping the current certificates",
      );
    }
  };
  // One that landed while starting applies now, rather than being lost.
  if (reloadPending) reload();
  let stopping = false;
  stop = (signal) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down: draining in-flight calls");
    app.stop().then(
      (drained) => {
        // Cutting calls at shutdown_timeout is the configured policy, not a
        // failure: orchestrators read a non-zero exit as a crash.
        if (drained) log.info({ drained }, "stopped");
        else log.warn({ drained }, "stopped after cutting calls past shutdown_timeout");
        process.exitCode = 0;
        leave(log);
      },
      (err: unknown) => {
        log.error({ err: { message: (err as Error).message } }, "shutdown failed");
        process.exitCode = 1;
        leave(log);
      },
    );
  };
  if (signalled) stop(signalled);
}

/**
 * The end of this process once its work is done: the log written out, the
 * channel to a cluster primary closed (it would keep a worker alive; Node
 * ends a worker at once when it closes), and a socket something still holds
 * (a query stuck behind a lock) given two seconds, not for ever.
 */
function leave(log: Logger): void {
  setTimeout(() => process.exit(), 2000).unref();
  if (cluster.isWorker) {
    const leaving: WorkerNews = { kind: "leaving", code: Number(process.exitCode ?? 0) };
    process.send?.(leaving);
  }
  log.flush(() => process.disconnect?.());
}
