import { timingSafeEqual } from "node:crypto";
import { ErrorReason, ErrorReasonSchema } from "../../../api/kms/v1/error_reason_pb.js";
import { errorFactory } from "../errors.js";
import { paging, type PageTokens } from "../paging.js";
import {
  GENESIS,
  type AuditChain,
  type AuditCheckpoint,
  type AuditEvent,
  type AuditHead,
} from "./audit_chain.js";
import { kmsErrors } from "./errors.js";

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
  /** The last event found in order (from where the walk began). */
  lastSeq: number;
  lastHash: Buffer;
}

/** A head recorded earlier that the chain must still hold, and who recorded it. */
export interface Anchor extends AuditHead {
  /** For problems: "the checkpoint of <time>", "this process's last look". */
  recordedBy: string;
}

/** How a signed checkpoint is named in problems. */
export const checkpointAnchor = (cp: AuditCheckpoint): Anchor => ({
  seq: cp.seq,
  hash: cp.hash,
  recordedBy: `the checkpoint of ${cp.at.toISOString()}`,
});

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

  /**
   * Walks the chain from its first event, stopping at the first that does
   * not fit; with a checkpoint, the chain must also still hold the event it
   * recorded, as it was (a cut tail or a replaced trail does not).
   */
  async verify(checkpoint?: AuditCheckpoint): Promise<Verification> {
    if (checkpoint && !this.chain.signed(checkpoint)) throw checkpointForged();
    return this.walk({ seq: 0, hash: GENESIS }, checkpoint && checkpointAnchor(checkpoint));
  }

  /**
   * Bounded work: checks that the chain still holds `anchor` and that every
   * event after it follows.
   */
  async verifySince(anchor: Anchor): Promise<Verification> {
    if (anchor.seq === 0) return this.walk({ seq: 0, hash: GENESIS }, anchor);
    const [found] = await this.repo.oldestFirst({ limit: 1, afterSeq: anchor.seq - 1 });
    if (found?.seq !== anchor.seq) {
      const [head] = await this.repo.newestFirst({ limit: 1 });
      return broken(
        { seq: head?.seq ?? 0, hash: head?.hash ?? GENESIS },
        0,
        (head?.seq ?? 0) + 1,
        (head?.seq ?? 0) < anchor.seq
          ? cutShort(head?.seq ?? 0, anchor)
          : `event ${anchor.seq}, which ${anchor.recordedBy} recorded, is missing`,
      );
    }
    if (!found.hash.equals(anchor.hash)) return broken(found, 0, anchor.seq, replaced(anchor));
    return this.walk(found);
  }

  /** Bounded work: the newest `events` events follow one another. */
  async verifyTail(events: number): Promise<Verification> {
    const [head] = await this.repo.newestFirst({ limit: 1 });
    const from = Math.max(0, (head?.seq ?? 0) - events);
    if (from === 0) return this.walk({ seq: 0, hash: GENESIS });
    const [start] = await this.repo.oldestFirst({ limit: 1, afterSeq: from - 1 });
    return this.walk(start ?? { seq: 0, hash: GENESIS });
  }

  private async walk(start: AuditHead, anchor?: Anchor): Promise<Verification> {
    let prev = { seq: start.seq, hash: start.hash };
    let checked = 0;
    for (;;) {
      const events = await this.repo.oldestFirst({ limit: VERIFY_BATCH, afterSeq: prev.seq });
      if (events.length === 0) break;
      for (const e of events) {
        if (e.seq !== prev.seq + 1) {
          const [from, to] = [prev.seq + 1, e.seq - 1];
          return broken(
            prev,
            checked,
            e.seq,
            from === to ? `event ${from} is missing` : `events ${from} to ${to} are missing`,
          );
        }
        if (!e.prevHash.equals(prev.hash)) {
          return broken(prev, checked, e.seq, `event ${e.seq} does not follow event ${prev.seq}`);
        }
        const expected = this.chain.seal(e);
        if (e.hash.length !== expected.length || !timingSafeEqual(e.hash, expected)) {
          return broken(prev, checked, e.seq, `event ${e.seq} was altered`);
        }
        if (anchor?.seq === e.seq && !e.hash.equals(anchor.hash)) {
          return broken(prev, checked, e.seq, replaced(anchor));
        }
        checked++;
        prev = { seq: e.seq, hash: e.hash };
      }
    }
    if (anchor && prev.seq < anchor.seq) {
      return broken(prev, checked, prev.seq + 1, cutShort(prev.seq, anchor));
    }
    return {
      intact: true,
      eventsChecked: checked,
      firstBadSeq: 0,
      problem: "",
      lastSeq: prev.seq,
      lastHash: prev.hash,
    };
  }
}

function broken(
  last: AuditHead,
  checked: number,
  firstBadSeq: number,
  problem: string,
): Verification {
  return {
    intact: false,
    eventsChecked: checked,
    firstBadSeq,
    problem,
    lastSeq: last.seq,
    lastHash: last.hash,
  };
}

const cutShort = (last: number, anchor: Anchor) =>
  `the trail ends at event ${last}, but ${anchor.recordedBy} recorded event ${anchor.seq}: newer events were removed`;

const replaced = (anchor: Anchor) =>
  `event ${anchor.seq} is not the one ${anchor.recordedBy} recorded: the trail was replaced`;

const checkpointForged = () =>
  errorFactory(ErrorReasonSchema)(
    "INVALID_ARGUMENT",
    ErrorReason.VALIDATION_FAILED,
    "checkpoint: its signature does not verify under this service's audit key (altered, forged, or written by another deployment)",
    { field: "checkpoint" },
  );
