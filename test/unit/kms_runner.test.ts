import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { kmsRunner } from "../../cmd/server/kms_runner.js";
import { newWorker } from "../../internal/biz/job_worker.js";
import type { AuditKind } from "../../internal/biz/kms/audit_chain.js";
import { announcement } from "../../internal/biz/kms/key_events.js";
import { KeyLifecycle } from "../../internal/biz/kms/key_lifecycle.js";
import { keyMint } from "../../internal/biz/kms/key_mint.js";
import { newKeyring } from "../../internal/biz/kms/keyring.js";
import { encryptionUsage } from "../../internal/biz/kms/kms_usage.js";
import { RootKeys } from "../../internal/biz/kms/root_keys.js";
import { createLogger } from "../../internal/pkg/log/logger.js";
import { FakeDataKeys } from "./fakes/data_keys.js";
import { FakeKeyEvents } from "./fakes/key_events.js";
import { dataKeyRow, TEST_POLICY } from "./fakes/keys.js";

// The KMS's background work, started and stopped as a server is, on fake timers.

const POLICY = { ...TEST_POLICY, maxEncryptionsPerKey: 10 };
const MAINTENANCE_MS = 30_000;
const AUDIT_POLL_MS = 10_000;

function newTestRunner(work: () => Promise<void> = async () => undefined) {
  const rootKey = randomBytes(32);
  const roots = new RootKeys(rootKey);
  const keys = new FakeDataKeys([
    dataKeyRow(rootKey, 1, "active", { expiresAt: new Date(Date.now() + 3600_000) }),
  ]);
  const keyring = newKeyring(keys, roots, 60_000);
  const warnings: string[] = [];
  const log = createLogger({
    level: "warn",
    format: "json",
    destination: new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split("\n").filter(Boolean))
          warnings.push((JSON.parse(line) as { msg: string }).msg);
        done();
      },
    }),
  });
  const events = new FakeKeyEvents();
  const usage = encryptionUsage();
  const worker = newWorker(work);
  const auditWatch = {
    ticks: 0,
    tick: async () => void auditWatch.ticks++,
    idle: async () => undefined,
  };
  const changes: string[] = [];
  const sut = kmsRunner({
    events,
    keys,
    keyring,
    lifecycle: new KeyLifecycle(keys, keyring, keyMint(roots, POLICY), POLICY, log),
    usage,
    workers: [{ name: "re-encryption", worker }],
    onChange: () => changes.push("index keys reloaded"),
    maintenanceMs: MAINTENANCE_MS,
    auditWatch,
    auditPollMs: AUDIT_POLL_MS,
    log,
  });
  return { sut, keys, keyring, events, usage, worker, auditWatch, changes, warnings };
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("kmsRunner", () => {
  it("When started, Then the audit watch has looked once, and another instance's key change empties the keyring", async () => {
    const { sut, keyring, events, auditWatch, changes } = newTestRunner();

    await sut.start();
    await keyring.active();
    events.announce();

    expect(auditWatch.ticks).toBe(1);
    expect(keyring.activeNow()).toBeUndefined();
    expect(changes).toEqual(["index keys reloaded"]);
    await sut.stop();
  });

  it("When the maintenance interval passes, Then the usage counts are flushed and a key past its count is rotated", async () => {
    const { sut, keys, usage, auditWatch } = newTestRunner();
    await sut.start();
    for (let i = 0; i < POLICY.maxEncryptionsPerKey; i++) usage.record(1);

    await vi.advanceTimersByTimeAsync(MAINTENANCE_MS);

    expect(keys.row(1)).toMatchObject({ status: "inactive", encryptionCount: 10n });
    expect(keys.changes.map((c) => c.kind)).toEqual(["key_rotated"]);
    expect(auditWatch.ticks).toBe(1 + MAINTENANCE_MS / AUDIT_POLL_MS);
    await sut.stop();
  });

  it("When a worker fails the same way at every poll, Then it is logged once", async () => {
    const { sut, warnings } = newTestRunner(() => Promise.reject(new Error("database away")));
    await sut.start();

    await vi.advanceTimersByTimeAsync(10_000);

    expect(warnings).toEqual(["re-encryption batch failed; will retry"]);
    await sut.stop();
  });

  it("When stopped, Then it no longer hears changes, its workers are closed, and what was counted is flushed", async () => {
    const { sut, keys, events, worker, usage, auditWatch } = newTestRunner();
    await sut.start();
    usage.record(1);

    await sut.stop();
    await vi.advanceTimersByTimeAsync(MAINTENANCE_MS);

    expect(events.watching).toBe(0);
    expect(worker.signal.aborted).toBe(true);
    expect(keys.row(1).encryptionCount).toBe(1n);
    expect(auditWatch.ticks).toBe(1);
  });
});

describe("key-change news", () => {
  it("Every change of keys an instance holds is announced; the re-encryption job's progress is not", () => {
    const news = (kind: AuditKind) => announcement({ kind, details: { version: "3" } });

    expect(
      (["key_generated", "key_rotated", "key_revoked", "key_expired"] as const).map(news),
    ).toEqual(["rotated:3", "rotated:3", "revoked:3", "expired"]);
    expect(
      (["root_key_rotated", "index_key_rotation_started", "index_key_rotated"] as const).map(news),
    ).toEqual(["root", "index", "index"]);
    expect(
      (["reencryption_started", "reencryption_stopped", "reencryption_finished"] as const).map(
        news,
      ),
    ).toEqual([undefined, undefined, undefined]);
  });
});
