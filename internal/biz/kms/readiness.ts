import type { Keyring } from "./keyring.js";

/**
 * The KMS's readiness: an active key is at hand, and no key seen altered is
 * still so. Rejects with the reason (KMS_NOT_READY, DATA_KEY_CORRUPT, the
 * database's error) while it is not.
 */
export async function kmsReady(keyring: Keyring): Promise<void> {
  await keyring.active();
  await keyring.checkCorrupt();
}
