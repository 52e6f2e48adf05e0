import type { Logger } from "../pkg/log/logger.js";
import type { DataKeyRepo } from "./kms.js";
import type { Keyring } from "./keyring.js";
import type { KeyLifecycle } from "./key_lifecycle.js";
import type { EncryptionUsage } from "./kms_usage.js";
import type { Reencryption } from "./reencryption.js";

/** How often an instance looks for a re-encryption job to work on. */
const REENCRYPTION_POLL_MS = 2000;

export interface KmsJob {
  /** Stops the timer and the watch, after a last flush of the usage counts. */
  stop(): Promise<void>;
}

/**
 * The KMS in the background of one instance: every `intervalMs` the usage
 * counts are flushed and maintenance runs (expiry, rotation when due); every
 * key change any instance announces makes the keyring forget its keys; every
 * two seconds it looks for a re-encryption job to work on (one instance at
 * a time does).
 */
export async function startKmsJob(parts: {
  repo: DataKeyRepo;
  keyring: Keyring;
  lifecycle: KeyLifecycle;
  usage: EncryptionUsage;
  reencryption: Reencryption;
  intervalMs: number;
  log: Logger;
}): Promise<KmsJob> {
  const { repo, keyring, lifecycle, usage, reencryption, log } = parts;
  const unwatch = await repo.watch(() => keyring.forget());
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
  let failing: string | undefined;
  const reencrypt = () =>
    reencryption.work().then(
      () => {
        failing = undefined;
      },
      (err: unknown) => {
        const message = (err as Error).message;
        if (message === failing) return;
        failing = message;
        log.warn({ err: { message } }, "re-encryption batch failed; will retry");
      },
    );
  const poll = setInterval(() => void reencrypt(), REENCRYPTION_POLL_MS).unref();
  reencryption.wake = () => void reencrypt();
  return {
    async stop() {
      clearInterval(timer);
      clearInterval(poll);
      reencryption.wake = () => undefined;
      await reencryption.close();
      await usage.flush(repo).catch(() => undefined);
      await unwatch();
    },
  };
}
