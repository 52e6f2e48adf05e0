import { createHmac, timingSafeEqual } from "node:crypto";
import { kmsErrors } from "./kms.js";
import type { Context } from "./context.js";
import { paging, type PageTokens } from "./paging.js";

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

/**
 * Seals events into the chain with the audit key, which the KMS loads at
 * start-up (wrapped under the root key, like the index key). Repositories
 * call `seal` inside the transaction that makes the change.
 */
export class AuditChain {
  private key: Buffer | undefined;

  use(key: Buffer): void {
    this.forget();
    this.key = key;
  }

  forget(): void {
    this.key?.fill(0);
    this.key = undefined;
  }

  /** HMAC-SHA256 over the previous hash and the event's canonical text. */
  seal(event: Omit<AuditEvent, "hash">): Buffer {
    if (!this.key) throw kmsErrors.notReady();
    return createHmac("sha256", this.key).update(event.prevHash).update(canonical(event)).digest();
  }
}

// One unambiguous text per event: JSON of an array, details sorted by key.
function canonical(e: Omit<AuditEvent, "hash" | "prevHash">): string {
  const details = Object.keys(e.details)
    .sort()
    .map((k) => [k, e.details[k]]);
  return JSON.stringify([String(e.seq), e.at.toISOString(), e.kind, e.actor, details]);
}

/** Storage of the trail, implemented in internal/data. */
export interface AuditRepo {
  /** Newest first, events below `beforeSeq` when given. */
  newestFirst(opts: { limit: number; beforeSeq?: number }): Promise<AuditEvent[]>;
  /** Oldest first, events after `afterSeq`. */
  oldestFirst(opts: { limit: number; afterSeq: number }): Promise<AuditEvent[]>;
}

export interface Verification {
  intact: boolean;
  eventsChecked: number;
  firstBadSeq: number;
  problem: string;
  lastHash: Buffer;
}

const VERIFY_BATCH = 1000;

/** Listing and verification of the audit trail. */
export class AuditTrail {
  constructor(
    private readonly repo: AuditRepo,
    private readonly chain: AuditChain,
  ) {}

  async list(
    request: { pageSize: number; pageToken: string },
    tokens: PageTokens,
  ): Promise<{ events: AuditEvent[]; nextPageToken: string }> {
    const pages = paging(tokens, request, "audit");
    if (!pages) throw kmsErrors.invalidPageToken();
    const found = await this.repo.newestFirst({ limit: pages.fetch, beforeSeq: pages.from });
    const { page, nextPageToken } = pages.finish(found, (e) => e.seq);
    return { events: page, nextPageToken };
  }

  /** Walks the chain from its first event, stopping at the first that does not fit. */
  async verify(): Promise<Verification> {
    let prev: { seq: number; hash: Buffer } = { seq: 0, hash: GENESIS };
    let checked = 0;
    const bad = (seq: number, problem: string): Verification => ({
      intact: false,
      eventsChecked: checked,
      firstBadSeq: seq,
      problem,
      lastHash: prev.hash,
    });
    for (;;) {
      const events = await this.repo.oldestFirst({ limit: VERIFY_BATCH, afterSeq: prev.seq });
      if (events.length === 0) break;
      for (const e of events) {
        if (e.seq !== prev.seq + 1) {
          const [from, to] = [prev.seq + 1, e.seq - 1];
          return bad(
            e.seq,
            from === to ? `event ${from} is missing` : `events ${from} to ${to} are missing`,
          );
        }
        if (!e.prevHash.equals(prev.hash)) {
          return bad(e.seq, `event ${e.seq} does not follow event ${prev.seq}`);
        }
        const expected = this.chain.seal(e);
        if (e.hash.length !== expected.length || !timingSafeEqual(e.hash, expected)) {
          return bad(e.seq, `event ${e.seq} was altered`);
        }
        checked++;
        prev = { seq: e.seq, hash: e.hash };
      }
    }
    return {
      intact: true,
      eventsChecked: checked,
      firstBadSeq: 0,
      problem: "",
      lastHash: prev.hash,
    };
  }
}
