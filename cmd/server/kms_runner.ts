import type { Worker } from "../../internal/biz/job_worker.js";
import type { AuditWatch } from "../../internal/biz/kms/audit_watch.js";
import type { DataKeyRepo } from "../../internal/biz/kms/data_keys.js";
import type { KeyEvents } from "../../internal/biz/kms/key_events.js";
import type { KeyLifecycle } from "../../internal/biz/kms/key_lifecycle.js";
import type { Keyring } from "../../internal/biz/kms/keyring.js";
import type { EncryptionUsage } from "../../internal/biz/kms/kms_usage.js";
import type { Logger } from "../../internal/pkg/log/logger.js";

/** How often an instance looks for background work (re-encryption, index-key rotation). */
const WORK_POLL_MS = 2000;

/** Background work started and stopped as a server is. */
export interface Runner {
  start(): Promise<void>;
  /** Stops every timer and waits for the work under way. */
  stop(): Promise<void>;
}

/**
 * The KMS in the background of one instance: every key change any instance
 * announces makes the keyring forget its keys (and `onChange` run); every
 * `maintenanceMs` the usage counts are flushed and maintenance runs
 * (expiry, rotation when due); every two seconds each worker looks for its
 * job (re-encryption, index-key rotation: one instance at a time does
 * each); every `auditPollMs` the audit watch looks at the trail, its first
 * look (the start-up check) before start() resolves.
 */
export function kmsRunner(p: {
  events: KeyEvents;
  keys: Pick<DataKeyRepo, "addEncryptions">;
  keyring: Keyring;
  lifecycle: KeyLifecycle;
  usage: EncryptionUsage;
  workers: { name: string; worker: Worker }[];
  /** Besides the keyring forgetting: what else follows a key change announced anywhere. */
  onChange?: () => void;
  maintenanceMs: number;
  auditWatch: Pick<AuditWatch, "tick" | "idle">;
  auditPollMs: number;
  log: Logger;
}): Runner {
  const { keys, keyring, lifecycle, usage, workers, auditWatch, log } = p;
  let running: { stop(): Promise<void> } | undefined;

  const maintain = async () => {
    try {
      await usage.flush(keys);
      await lifecycle.maintenance();
    } catch (err) {
      log.warn({ err: { message: (err as Error).message } }, "kms maintenance failed; will retry");
    }
  };
  // Polled every two seconds: a failure that persists (the database down) is
  // logged once, not every time.
  const runs = () =>
    workers.map(({ name, worker }) => {
      let failing: string | undefined;
      const run = () =>
        worker.work().then(
          () => {
            failing = undefined;
          },
          (err: unknown) => {
            const message = (err as Error).message;
            if (message === failing) return;
            failing = message;
            log.warn({ err: { message } }, `${name} batch failed; will retry`);
          },
        );
      worker.wake = () => void run();
      return run;
    });

  return {
    async start() {
      if (running) return;
      const unwatch = await p.events.watch(() => {
        keyring.forget();
        p.onChange?.();
      });
      const maintenance = setInterval(() => void maintain(), p.maintenanceMs).unref();
      const polled = runs();
      const poll = setInterval(() => {
        for (const run of polled) void run();
      }, WORK_POLL_MS).unref();
      let audit: NodeJS.Timeout | undefined;
      const started = {
        async stop() {
          clearInterval(audit);
          await auditWatch.idle();
          clearInterval(maintenance);
          clearInterval(poll);
          for (const { worker } of workers) worker.wake = () => undefined;
          await Promise.all(workers.map(({ worker }) => worker.close()));
          await usage.flush(keys).catch(() => undefined);
          await unwatch();
        },
      };
      running = started;
      // Bounded (since the newest checkpoint, or the newest events), and
      // never fatal: a broken trail is reported, the keys still serve.
      await auditWatch.tick();
      if (running === started)
        audit = setInterval(() => void auditWatch.tick(), p.auditPollMs).unref();
    },
    async stop() {
      const r = running;
      running = undefined;
      await r?.stop();
    },
  };
}
