#!/usr/bin/env node
// First, before anything else loads: an older Node is refused in one line.
import "../../internal/pkg/cli/node_version.js";
import { Command } from "commander";
import { flags, runCli } from "../../internal/pkg/cli/cli.js";
import type { AuditArgs } from "./audit.js";
import type { ConnectArgs } from "./connect.js";
import type { IndexKeyArgs } from "./index_key.js";
import type { ReencryptArgs } from "./reencrypt.js";
import type { RootKeyArgs } from "./root_key.js";

// Operator commands against a running service's KmsService, over its gRPC
// port, as deploy scripts call them: no prompts, exit codes that mean
// something, --json. Only commander loads up front, so --help answers at once.

const argv = process.argv.slice(2);
const json = argv.some((a) => a === "--json" || a === "-json");

/** Exit with `message` on stderr (and as JSON on stdout under --json). */
function fail(message: string, code: number): never {
  process.stderr.write(`kms: ${message}\n`);
  if (json) process.stdout.write(`${JSON.stringify({ error: message, exitCode: code })}\n`);
  process.exit(code);
}

// The parsed options, for the hint about a missing token when a call fails.
let parsed: ConnectArgs | undefined;

/** A command's action: its options and the program's, as its module takes them. */
const handle =
  <A extends ConnectArgs>(run: (args: A) => Promise<void>) =>
  async (...params: unknown[]) => {
    const args = flags(params.at(-1) as Command) as unknown as A;
    parsed = args;
    await run(args);
  };

const BATCH_SIZE = ["--batch-size <rows>", "rows per batch (1..10000)"] as const;
const PAUSE = ["--pause <duration>", "pause between batches, e.g. 200ms"] as const;

const program = new Command("kms")
  .usage(
    [
      "reencrypt <start|status|stop> [options]",
      "kms root-key rotate [options]",
      "kms index-key <rotate|status> [options]",
      "kms audit verify [--checkpoint FILE] [options]",
    ].join("\n       "), // under "Usage: "
  )
  .description(
    "Talks to the service's gRPC port. The token comes from KMS_TOKEN or --token-file (a token with kms.admin), never from the command line.",
  )
  // A command's help lists the connection options too: each command takes them.
  .configureHelp({ showGlobalOptions: true })
  .option(
    "--addr <host:port>",
    "the service's gRPC host:port (KMS_ADDR)",
    process.env.KMS_ADDR ?? "127.0.0.1:9000",
  )
  .option("--tls", "connect with TLS")
  .option("--ca <file>", "CA certificate file for --tls (PEM)")
  .option("--token-file <file>", "file holding the bearer token")
  .option("--timeout <duration>", "give up on a call after this long", "10s")
  .option("--json", "print the result as JSON")
  .addHelpText(
    "after",
    "\nExit codes: 0 done (for --watch: the job finished), 1 the service refused or the job did not finish, 2 usage.",
  );

const reencrypt = (action: "start" | "status" | "stop") =>
  handle(async (args: ReencryptArgs) => (await import("./reencrypt.js")).reencrypt(action, args));
const group = program
  .command("reencrypt")
  .description("move stored values under older keys to the active key");
group
  .command("start")
  .description("start the job")
  .option("--below <version>", "only values under key versions below this one (a positive integer)")
  .option(...BATCH_SIZE)
  .option(...PAUSE)
  .option("--watch", "follow the job with a progress bar until it ends")
  .action(reencrypt("start"));
group
  .command("status")
  .description("show the job")
  .option("--watch", "follow it until it ends")
  .action(reencrypt("status"));
group.command("stop").description("stop the job after its current batch").action(reencrypt("stop"));

program
  .command("root-key")
  .description("the root key the stored keys are wrapped under")
  .command("rotate")
  .description(
    "re-wrap every stored key under the new root key (on an instance configured with kms.root_key and kms.previous_root_key)",
  )
  .action(handle(async (args: RootKeyArgs) => (await import("./root_key.js")).rotateRootKey(args)));

const indexKey = (action: "rotate" | "status") =>
  handle(async (args: IndexKeyArgs) => (await import("./index_key.js")).indexKey(action, args));
const indexGroup = program.command("index-key").description("the blind-index key, replaced online");
indexGroup
  .command("rotate")
  .description(
    "begin replacing the index key (or resume a failed rotation; a rotation under way is shown)",
  )
  .option(...BATCH_SIZE)
  .option(...PAUSE)
  .option("--watch", "follow the rotation with a progress bar until it ends")
  .action(indexKey("rotate"));
indexGroup
  .command("status")
  .description("show the rotation")
  .option("--watch", "follow it until it ends")
  .action(indexKey("status"));

program
  .command("audit")
  .description("the audit trail of key events")
  .command("verify")
  .description(
    "check the trail's chain, and that it still holds the newest checkpoint in FILE (exit 0 intact, 1 broken, 2 could not check)",
  )
  .option(
    "--checkpoint <file>",
    "a file of checkpoints the service wrote (its checkpoint file, or its log)",
  )
  .action(handle(async (args: AuditArgs) => (await import("./audit.js")).verifyAudit(args)));

await runCli(program, argv, (message) => fail(`${message} (see kms --help)`, 2)).catch(
  async (err: unknown) => {
    const { exitCodeOf, describeError } = await import("./connect.js");
    fail(describeError(err, parsed), exitCodeOf(err));
  },
);
