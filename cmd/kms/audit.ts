import { readFileSync } from "node:fs";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { newestCheckpoint, CheckpointTextError } from "../../internal/biz/kms/audit_checkpoint.js";
import { callOptions, client, describeError, UsageError, type ConnectArgs } from "./connect.js";

export interface AuditArgs extends ConnectArgs {
  json?: boolean;
  checkpoint?: string;
}

/**
 * Whatever keeps the trail from being checked: an unreadable checkpoint, a
 * service that cannot be reached or refuses. Exit 2, as for usage, since
 * nothing is known about the trail (exit 1 means it is broken).
 */
class CannotCheck extends UsageError {}

/**
 * `kms audit verify`: the service walks the chain (KmsService.VerifyAuditTrail)
 * and, given the newest checkpoint of a file, checks the chain still holds
 * the event it recorded. The service checks the checkpoint's signature: only
 * it holds the audit key. Exit 0 intact, 1 broken, 2 could not check.
 */
export async function verifyAudit(args: AuditArgs): Promise<void> {
  const checkpoint = args.checkpoint === undefined ? undefined : readCheckpoint(args.checkpoint);
  const kms = client(args);
  const v = await kms
    .verifyAuditTrail(
      {
        checkpoint: checkpoint && {
          seq: BigInt(checkpoint.seq),
          headHash: checkpoint.hash.toString("hex"),
          time: timestampFromDate(checkpoint.at),
          mac: checkpoint.mac.toString("hex"),
        },
      },
      callOptions(args),
    )
    .catch((err: unknown) => {
      throw new CannotCheck(`could not check the audit trail: ${describeError(err, args)}`);
    });
  const view = {
    intact: v.intact,
    eventsChecked: Number(v.eventsChecked),
    firstBadSeq: Number(v.firstBadSeq) || undefined,
    problem: v.problem || undefined,
    lastHash: v.lastHash,
    checkpoint: checkpoint && { seq: checkpoint.seq, at: checkpoint.at.toISOString() },
  };
  if (!v.intact) process.exitCode = 1;
  if (args.json) {
    process.stdout.write(`${JSON.stringify(view)}\n`);
    return;
  }
  const against = checkpoint
    ? `, agreeing with the checkpoint of ${view.checkpoint!.at} (event ${checkpoint.seq})`
    : " (no checkpoint given: a cut tail would not show)";
  process.stdout.write(
    v.intact
      ? `intact: ${view.eventsChecked} events checked${against}\n`
      : `BROKEN at event ${view.firstBadSeq}: ${v.problem}\n`,
  );
}

function readCheckpoint(path: string) {
  if (path.trim() === "")
    throw new CannotCheck(
      "--checkpoint is empty (an unset shell variable?): name the checkpoint file",
    );
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CannotCheck(
      `--checkpoint: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`,
    );
  }
  try {
    const cp = newestCheckpoint(text, path);
    if (cp) return cp;
  } catch (err) {
    if (err instanceof CheckpointTextError) throw new CannotCheck(`--checkpoint: ${err.message}`);
    throw err;
  }
  throw new CannotCheck(
    `--checkpoint: ${path} holds no checkpoint (JSON lines from kms.audit_checkpoints.file, or the service's "audit checkpoint" log lines)`,
  );
}
