import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  AuditChain,
  GENESIS,
  type AuditCheckpoint,
  type AuditEvent,
} from "../../internal/biz/kms/audit_chain.js";
import { AuditTrail, type AuditRepo } from "../../internal/biz/kms/audit_trail.js";
import { checkpointJson, newestCheckpoint } from "../../internal/biz/kms/audit_checkpoint.js";
import { AuditWatch, type CheckpointSink } from "../../internal/biz/kms/audit_watch.js";
import { BizError } from "../../internal/biz/errors.js";
import { parseConfig } from "../../internal/conf/load.js";
import { createLogger } from "../../internal/pkg/log/logger.js";

// The checkpoint logic over an in-memory trail: what is compared, what is
// refused, when the watch writes and when it stops.

// Every event distinct, even two written in the same millisecond.
let distinct = 0;

function memoryTrail(chain: AuditChain) {
  let events: AuditEvent[] = [];
  const repo: AuditRepo = {
    newestFirst: ({ limit, beforeSeq }) =>
      Promise.resolve(
        [...events]
          .reverse()
          .filter((e) => beforeSeq === undefined || e.seq < beforeSeq)
          .slice(0, limit),
      ),
    oldestFirst: ({ limit, afterSeq }) =>
      Promise.resolve(events.filter((e) => e.seq > afterSeq).slice(0, limit)),
  };
  return {
    trail: new AuditTrail(repo, chain),
    append(n: number) {
      for (let i = 0; i < n; i++) {
        const last = events.at(-1);
        const e = {
          seq: (last?.seq ?? 0) + 1,
          at: new Date(),
          kind: "key_rotated" as const,
          actor: "ops",
          details: { reason: `r${distinct++}` },
          prevHash: last?.hash ?? GENESIS,
        };
        events.push({ ...e, hash: chain.seal(e) });
      }
    },
    keepFirst(n: number) {
      events = events.slice(0, n);
    },
    head: () => events.at(-1)!,
  };
}

const newChain = () => {
  const chain = new AuditChain();
  chain.use(randomBytes(32));
  return chain;
};

describe("a checkpoint compared with the chain", () => {
  it("When the chain still holds the checkpoint's event, Then it is intact", async () => {
    const chain = newChain();
    const t = memoryTrail(chain);
    t.append(3);
    const cp = chain.checkpoint(t.head(), new Date());
    t.append(2);
    expect(await t.trail.verify(cp)).toMatchObject({ intact: true, eventsChecked: 5, lastSeq: 5 });
  });

  it("When the newest events are cut, Then the problem names the cut", async () => {
    const chain = newChain();
    const t = memoryTrail(chain);
    t.append(5);
    const cp = chain.checkpoint(t.head(), new Date("2027-01-01T00:00:00Z"));
    t.keepFirst(3);
    expect(await t.trail.verify()).toMatchObject({ intact: true });
    expect(await t.trail.verify(cp)).toMatchObject({
      intact: false,
      firstBadSeq: 4,
      problem:
        "the trail ends at event 3, but the checkpoint of 2027-01-01T00:00:00.000Z recorded event 5: newer events were removed",
    });
  });

  it("When the trail is replaced by a longer one, Then the checkpoint's event differs", async () => {
    const chain = newChain();
    const t = memoryTrail(chain);
    t.append(2);
    const cp = chain.checkpoint(t.head(), new Date());
    t.keepFirst(0);
    t.append(4);
    expect(await t.trail.verify(cp)).toMatchObject({
      intact: false,
      firstBadSeq: 2,
      problem: expect.stringMatching(/^event 2 is not the one the checkpoint of .* recorded/),
    });
  });

  it("When a checkpoint is altered, or signed under another audit key, or made of an event hash, Then it is refused", async () => {
    const chain = newChain();
    const t = memoryTrail(chain);
    t.append(3);
    const cp = chain.checkpoint(t.head(), new Date());
    const other = newChain().checkpoint(t.head(), cp.at);
    const forgeries: AuditCheckpoint[] = [
      { ...cp, seq: 2 },
      { ...cp, at: new Date(cp.at.getTime() + 1) },
      other,
      { ...cp, mac: t.head().hash },
    ];
    for (const forged of forgeries) {
      const err = await t.trail.verify(forged).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BizError);
      expect(err).toMatchObject({ code: "INVALID_ARGUMENT", metadata: { field: "checkpoint" } });
    }
  });
});

describe("the newest checkpoint of a text", () => {
  const chain = newChain();
  const cp = chain.checkpoint({ seq: 7, hash: randomBytes(32) }, new Date());
  const older = chain.checkpoint({ seq: 6, hash: randomBytes(32) }, new Date(0));

  it("When it is a log, Then the last line carrying a checkpoint is taken and a half-written line passed over", () => {
    const text = [
      JSON.stringify({ level: "info", msg: "listening" }),
      JSON.stringify(checkpointJson(older)),
      JSON.stringify({ level: "info", checkpoint: checkpointJson(cp), msg: "audit checkpoint" }),
      '{"level":"info","checkpoint":{"seq":8,"head',
    ].join("\n");
    expect(newestCheckpoint(text, "f")).toEqual(cp);
  });

  it("When none is there, Then undefined; when one is malformed, Then an error naming the line and field", () => {
    expect(newestCheckpoint("garbage\n\n{}\n", "f")).toBeUndefined();
    const bad = JSON.stringify({ ...checkpointJson(cp), at: "yesterday" });
    expect(() => newestCheckpoint(`x\n${bad}\n`, "f")).toThrow("f: line 2: not a checkpoint: at");
  });
});

describe("the audit watch", () => {
  const log = createLogger({ level: "silent", format: "json" });
  const policy = { everyEvents: 3, intervalMs: 3600_000 };
  const collecting = (newest?: AuditCheckpoint) => {
    const written: AuditCheckpoint[] = [];
    const sink: CheckpointSink = {
      name: "memory",
      write: (cp) => Promise.resolve(void written.push(cp)),
      newest: () => Promise.resolve(newest ?? written.at(-1)),
    };
    return { sink, written };
  };

  it("When the trail grows, Then a checkpoint is written at start and once every N events", async () => {
    const chain = newChain();
    const t = memoryTrail(chain);
    t.append(1);
    const { sink, written } = collecting();
    const watch = new AuditWatch(t.trail, chain, [sink], policy, log);
    await watch.tick();
    t.append(2);
    await watch.tick();
    t.append(1);
    await watch.tick();
    expect(written.map((c) => c.seq)).toEqual([1, 4]);
    expect(written.every((c) => chain.signed(c))).toBe(true);
    expect(watch.state()).toEqual({
      intact: true,
      problem: "",
      checkedSeq: 4,
      checkpointSeq: 4,
    });
  });

  it("When the interval has passed, Then a checkpoint is written though no event came", async () => {
    const chain = newChain();
    const t = memoryTrail(chain);
    t.append(2);
    const { sink, written } = collecting();
    const watch = new AuditWatch(t.trail, chain, [sink], { ...policy, intervalMs: 0 }, log);
    await watch.tick();
    await watch.tick();
    expect(written.map((c) => c.seq)).toEqual([2, 2]);
  });

  it("When the trail goes backwards, Then it reports it and writes no checkpoint after", async () => {
    const chain = newChain();
    const t = memoryTrail(chain);
    t.append(4);
    const { sink, written } = collecting();
    const watch = new AuditWatch(t.trail, chain, [sink], policy, log);
    await watch.tick();
    t.keepFirst(0);
    t.append(9);
    await watch.tick();
    await watch.tick();
    expect(written.map((c) => c.seq)).toEqual([4]);
    expect(watch.state()).toMatchObject({
      intact: false,
      problem: expect.stringMatching(/^event 4 is not the one this service's check of .* recorded/),
    });
  });

  it("When the sink's newest checkpoint is forged, Then start-up reports the trail unchecked and writes none", async () => {
    const chain = newChain();
    const t = memoryTrail(chain);
    t.append(2);
    const forged = newChain().checkpoint(t.head(), new Date());
    const { sink, written } = collecting(forged);
    const watch = new AuditWatch(t.trail, chain, [sink], policy, log);
    await watch.tick();
    expect(written).toEqual([]);
    expect(watch.state()).toMatchObject({
      intact: false,
      problem: expect.stringMatching(/does not verify/),
    });
  });
});

describe("kms.audit_checkpoints", () => {
  const conf = (audit_checkpoints: Record<string, unknown>) => ({
    kms: { root_key: Buffer.alloc(32, 1).toString("base64"), audit_checkpoints },
  });

  it("When a setting is out of bounds, Then the config is refused naming it, without echoing the URL", () => {
    expect(() => parseConfig(conf({ http_url: "ftp://user:pw@host/x" }), "t.yaml")).toThrow(
      /^config t\.yaml: kms\.audit_checkpoints\.http_url: must be an http:\/\/ or https:\/\/ URL$/,
    );
    expect(() => parseConfig(conf({ every_events: 0 }), "t.yaml")).toThrow(
      /kms\.audit_checkpoints\.every_events/,
    );
    expect(() => parseConfig(conf({ poll_interval: "0s" }), "t.yaml")).toThrow(
      /kms\.audit_checkpoints\.poll_interval/,
    );
    const ok = parseConfig(conf({ http_url: "https://audit.example/cp", file: "/tmp/cp" }), "t");
    expect(ok.kms!.auditCheckpoints).toMatchObject({
      everyEvents: 100,
      httpUrl: "https://audit.example/cp",
      file: "/tmp/cp",
    });
  });
});
