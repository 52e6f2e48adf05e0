import type { Logger } from "../pkg/log/logger.js";
import type { DataKeyRepo } from "./kms.js";
import type { Keyring } from "./keyring.js";
import type { KeyLifecycle } from "./key_lifecycle.js";
import type { EncryptionUsage } from "./kms_usage.js";
import type { Worker } from "./job_worker.js";

/** How often an instance looks for background work (re-encryption, index-key rotation). */
const WORK_POLL_MS = 2000;

export interface KmsJob {
  /** Stops the timer and the watch, after a last flush of the usage counts. */
  stop(): Promise<void>;
}

/**
 * The KMS in the background of one instance: every `intervalMs` the usage
 * counts are flushed and maintenance runs (expiry, rotation when due); every
 * key change any instance announces makes the keyring forget its keys (and
 * `onChange` run); every two seconds each worker looks for its job to work
 * on (re-encryption, index-key rotation: one instance at a time does each).
 */
export async function startKmsJob(parts: {
  repo: DataKeyRepo;
  keyring: Keyring;
  lifecycle: KeyLifecycle;
  usage: EncryptionUsage;
  workers: { name: string; worker: Worker }[];
  /** Besides the keyring forgetting: what else follows a key change announced anywhere. */
  onChange?: () => void;
  intervalMs: number;
  log: Logger;
}): Promise<KmsJob> {
  const { repo, keyring, lifecycle, usage, workers, log } = parts;
  const unwatch = await repo.watch(() => {
    keyring.forget();
    parts.onChange?.();
  });
  const tick = async () => {
    try {
      await usage.flush(repo);
      await lifecycle.maintenance();
    } catch (err) {
      log.warn({ err: { message: (err as Error).message } }, "kms maintenance failed; will retry");
    }
  };
  const timer = setInterval(() => void tick(), parts.intervalMs).unref();
  // Polled every two seconds: a failure that persists (the database down) is
  // logged once, not every time.
  const runs = workers.map(({ name, worker }) => {
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
  const poll = setInterval(() => {
    for (const run of runs) void run();
  }, WORK_POLL_MS).unref();
  return {
    async stop() {
      clearInterval(timer);
      clearInterval(poll);
      for (const { worker } of workers) worker.wake = () => undefined;
      await Promise.all(workers.map(({ worker }) => worker.close()));
      await usage.flush(repo).catch(() => undefined);
      await unwatch();
    },
  };
}
