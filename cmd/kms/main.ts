#!/usr/bin/env node
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import type { ReencryptArgs } from "./reencrypt.js";
import type { RootKeyArgs } from "./root_key.js";
import type { IndexKeyArgs } from "./index_key.js";
import type { AuditArgs } from "./audit.js";
import type { ConnectArgs } from "./connect.js";
import { refuseAmbiguous } from "./args.js";

// Operator commands against a running service's KmsService, over its gRPC
// port, as deploy scripts call them: no prompts, exit codes that mean
// something, --json. Only yargs loads up front, so --help answers at once.

const argv = hideBin(process.argv);
const json = argv.includes("--json");

/** Exit with `message` on stderr (and as JSON on stdout under --json). */
function fail(message: string, code: number): never {
  process.stderr.write(`kms: ${message}\n`);
  if (json) process.stdout.write(`${JSON.stringify({ error: message, exitCode: code })}\n`);
  process.exit(code);
}

// The parsed options, for the hint about a missing token when a call fails.
let parsed: ConnectArgs | undefined;

const run = (action: "start" | "status" | "stop") => async (args: ReencryptArgs) =>
  (await import("./reencrypt.js")).reencrypt(action, args);

await yargs(argv)
  .scriptName("kms")
  .usage(
    "$0 reencrypt <start|status|stop> [options]\n$0 root-key rotate [options]\n$0 index-key <rotate|status> [options]\n$0 audit verify [--checkpoint FILE] [options]\n\nTalks to the service's gRPC port. The token comes from KMS_TOKEN or --token-file (a token with kms.admin), never from the command line.",
  )
  .parserConfiguration({ "short-option-groups": false, "populate--": true })
  .check(refuseAmbiguous(argv))
  .middleware((args) => {
    parsed = args as unknown as ConnectArgs;
  })
  .option("addr", {
    type: "string",
    default: process.env.KMS_ADDR ?? "127.0.0.1:9000",
    describe: "the service's gRPC host:port (KMS_ADDR)",
  })
  .option("tls", { type: "boolean", describe: "connect with TLS" })
  .option("ca", { type: "string", describe: "CA certificate file for --tls (PEM)" })
  .option("token-file", { type: "string", describe: "file holding the bearer token" })
  .option("timeout", {
    type: "string",
    default: "10s",
    describe: "give up on a call after this long",
  })
  .option("json", { type: "boolean", describe: "print the result as JSON" })
  .command("reencrypt", "move stored values under older keys to the active key", (y) =>
    y
      .command(
        "start",
        "start the job",
        (c) =>
          c
            .option("below", {
              type: "string",
              describe: "only values under key versions below this one (a positive integer)",
            })
            .option("batch-size", { type: "string", describe: "rows per batch (1..10000)" })
            .option("pause", { type: "string", describe: "pause between batches, e.g. 200ms" })
            .option("watch", {
              type: "boolean",
              describe: "follow the job with a progress bar until it ends",
            }),
        run("start"),
      )
      .command(
        "status",
        "show the job",
        (c) => c.option("watch", { type: "boolean", describe: "follow it until it ends" }),
        run("status"),
      )
      .command("stop", "stop the job after its current batch", () => undefined, run("stop"))
      .demandCommand(1, "name a command: start, status or stop")
      .strict(),
  )
  .command("root-key", "the root key the stored keys are wrapped under", (y) =>
    y
      .command(
        "rotate",
        "re-wrap every stored key under the new root key (on an instance configured with kms.root_key and kms.previous_root_key)",
        () => undefined,
        async (args: RootKeyArgs) => (await import("./root_key.js")).rotateRootKey(args),
      )
      .demandCommand(1, "name a command: rotate")
      .strict(),
  )
  .command("index-key", "the blind-index key, replaced online", (y) =>
    y
      .command(
        "rotate",
        "begin replacing the index key (or resume a failed rotation; a rotation under way is shown)",
        (c) =>
          c
            .option("batch-size", { type: "string", describe: "rows per batch (1..10000)" })
            .option("pause", { type: "string", describe: "pause between batches, e.g. 200ms" })
            .option("watch", {
              type: "boolean",
              describe: "follow the rotation with a progress bar until it ends",
            }),
        async (args: IndexKeyArgs) => (await import("./index_key.js")).indexKey("rotate", args),
      )
      .command(
        "status",
        "show the rotation",
        (c) => c.option("watch", { type: "boolean", describe: "follow it until it ends" }),
        async (args: IndexKeyArgs) => (await import("./index_key.js")).indexKey("status", args),
      )
      .demandCommand(1, "name a command: rotate or status")
      .strict(),
  )
  .command("audit", "the audit trail of key events", (y) =>
    y
      .command(
        "verify",
        "check the trail's chain, and that it still holds the newest checkpoint in FILE (exit 0 intact, 1 broken, 2 could not check)",
        (c) =>
          c.option("checkpoint", {
            type: "string",
            describe: "a file of checkpoints the service wrote (its checkpoint file, or its log)",
          }),
        async (args: AuditArgs) => (await import("./audit.js")).verifyAudit(args),
      )
      .demandCommand(1, "name a command: verify")
      .strict(),
  )
  .demandCommand(1, "name a command: reencrypt, root-key, index-key, audit")
  .strict()
  .version(false)
  .epilogue(
    "Exit codes: 0 done (for --watch: the job finished), 1 the service refused or the job did not finish, 2 usage.",
  )
  .fail((message, err) => {
    // Usage problems come here; a handler's errors go on to the catch below.
    if (err && !message) throw err;
    fail(`${message ?? err?.message ?? "usage"} (see kms --help)`, 2);
  })
  .parseAsync()
  .catch(async (err: unknown) => {
    const { exitCodeOf, describeError } = await import("./connect.js");
    fail(describeError(err, parsed), exitCodeOf(err));
  });
