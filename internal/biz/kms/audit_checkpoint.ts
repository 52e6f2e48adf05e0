import type { AuditCheckpoint } from "./audit_chain.js";

// The one text form of a checkpoint: a JSON object, one per line in the file
// sink, the body the HTTP sink posts, and the `checkpoint` field of the
// service's "audit checkpoint" log line. The verifier reads any of them.

/** A checkpoint as JSON: seq, headHash (hex), at (ISO 8601), mac (hex). */
export interface CheckpointJson {
  seq: number;
  headHash: string;
  at: string;
  mac: string;
}

export function checkpointJson(cp: AuditCheckpoint): CheckpointJson {
  return {
    seq: cp.seq,
    headHash: cp.hash.toString("hex"),
    at: cp.at.toISOString(),
    mac: cp.mac.toString("hex"),
  };
}

/** Text that should hold a checkpoint and does not; the message names what is wrong. */
export class CheckpointTextError extends Error {
  override name = "CheckpointTextError";
}

const HEX32 = /^[0-9a-f]{64}$/;

/** The checkpoint `value` holds, or the reason it holds none. */
export function parseCheckpoint(value: unknown): AuditCheckpoint | string {
  if (typeof value !== "object" || value === null) return "not a JSON object";
  const v = value as Record<string, unknown>;
  if (typeof v.seq !== "number" || !Number.isSafeInteger(v.seq) || v.seq < 0)
    return "seq: expected a non-negative integer";
  if (typeof v.headHash !== "string" || !HEX32.test(v.headHash))
    return "headHash: expected 64 hex digits";
  const at = typeof v.at === "string" ? new Date(v.at) : undefined;
  if (!at || Number.isNaN(at.getTime())) return "at: expected an ISO 8601 time";
  if (typeof v.mac !== "string" || !HEX32.test(v.mac)) return "mac: expected 64 hex digits";
  return { seq: v.seq, hash: Buffer.from(v.headHash, "hex"), at, mac: Buffer.from(v.mac, "hex") };
}

/**
 * The newest (last) checkpoint in `text`: JSON lines, each a checkpoint or a
 * log line carrying one. Lines that are not JSON objects are passed over (a
 * log holds other lines; a crash may leave half a line at the end); a line
 * that claims to be a checkpoint and is malformed is an error. Undefined
 * when the text holds none.
 */
export function newestCheckpoint(text: string, source: string): AuditCheckpoint | undefined {
  const lines = text.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (!line.startsWith("{")) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    const v = value as Record<string, unknown>;
    const claimed = "checkpoint" in v ? v.checkpoint : "mac" in v ? v : undefined;
    if (claimed === undefined) continue;
    const cp = parseCheckpoint(claimed);
    if (typeof cp === "string")
      throw new CheckpointTextError(`${source}: line ${i + 1}: not a checkpoint: ${cp}`);
    return cp;
  }
  return undefined;
}
