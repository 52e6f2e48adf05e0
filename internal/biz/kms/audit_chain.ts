import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import { keyObject, zeroKey } from "../../pkg/kms/key_object.js";
import type { Context } from "../context.js";
import { kmsErrors } from "./errors.js";

export type AuditKind =
  | "key_generated"
  | "key_rotated"
  | "key_revoked"
  | "key_expired"
  | "key_retired"
  | "reencryption_started"
  | "reencryption_stopped"
  | "reencryption_finished"
  | "root_key_rotated"
  | "index_key_rotation_started"
  | "index_key_rotated";

/** What a key change records, in the same transaction as the change. */
export interface AuditEntry {
  kind: AuditKind;
  actor: string;
  /** Versions, reasons, counts; never key material. */
  details: Record<string, string>;
}

/** An event as stored: the entry, its place in the chain, and its seal. */
export interface AuditEvent extends AuditEntry {
  seq: number;
  at: Date;
  prevHash: Buffer;
  hash: Buffer;
}

/** The actor for a change made outside any call (timers, the re-encryption job). */
export const SYSTEM_ACTOR = "system";

/** Who made a change: the authenticated caller, or the service itself. */
export const actorOf = (ctx?: Context): string => ctx?.caller?.name ?? SYSTEM_ACTOR;

/** The hash before the first event. */
export const GENESIS = Buffer.alloc(32);

/** The chain's newest event, or GENESIS at seq 0 when the trail is empty. */
export interface AuditHead {
  seq: number;
  hash: Buffer;
}

/**
 * The head of the trail at a moment, signed by the service: kept outside the
 * database, it reveals a trail cut short or replaced.
 */
export interface AuditCheckpoint extends AuditHead {
  at: Date;
  mac: Buffer;
}

/**
 * Seals events into the chain with the audit key, which the KMS loads at
 * start-up (wrapped under the root key, like the index key). Repositories
 * call `seal` inside the transaction that makes the change. Checkpoints are
 * signed under a key derived from it, so no event hash can pass for one.
 */
export class AuditChain {
  private key: Buffer | undefined;
  private checkpointKey: Buffer | undefined;

  use(key: Buffer): void {
    this.forget();
    this.key = key;
    this.checkpointKey = Buffer.from(
      hkdfSync("sha256", key, Buffer.alloc(0), "kms audit checkpoint v1", 32),
    );
  }

  forget(): void {
    if (this.key) zeroKey(this.key);
    if (this.checkpointKey) zeroKey(this.checkpointKey);
    this.key = undefined;
    this.checkpointKey = undefined;
  }

  /** HMAC-SHA256 over the previous hash and the event's canonical text. */
  seal(event: Omit<AuditEvent, "hash">): Buffer {
    if (!this.key) throw kmsErrors.notReady();
    return createHmac("sha256", keyObject(this.key))
      .update(event.prevHash)
      .update(canonical(event))
      .digest();
  }

  /** A checkpoint of `head` at `at`, signed. */
  checkpoint(head: AuditHead, at: Date): AuditCheckpoint {
    return { seq: head.seq, hash: head.hash, at, mac: this.checkpointMac(head, at) };
  }

  /** Whether this service signed `cp` (under this audit key). */
  signed(cp: AuditCheckpoint): boolean {
    // A time no Date can hold (a caller's Timestamp out of range) was never signed.
    if (Number.isNaN(cp.at.getTime()) || !Number.isSafeInteger(cp.seq)) return false;
    const expected = this.checkpointMac(cp, cp.at);
    return cp.mac.length === expected.length && timingSafeEqual(cp.mac, expected);
  }

  private checkpointMac(head: AuditHead, at: Date): Buffer {
    if (!this.checkpointKey) throw kmsErrors.notReady();
    const text = JSON.stringify([String(head.seq), head.hash.toString("hex"), at.toISOString()]);
    return createHmac("sha256", keyObject(this.checkpointKey)).update(text).digest();
  }
}

// One unambiguous text per event: JSON of an array, details sorted by key.
function canonical(e: Omit<AuditEvent, "hash" | "prevHash">): string {
  const details = Object.keys(e.details)
    .sort()
    .map((k) => [k, e.details[k]]);
  return JSON.stringify([String(e.seq), e.at.toISOString(), e.kind, e.actor, details]);
}
