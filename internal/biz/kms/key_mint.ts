import { randomBytes } from "node:crypto";
import { assertAlgorithm, type Algorithm } from "../../pkg/kms/aead.js";
import { dataKeyLabel, fingerprint, INDEX_KEY_LABEL } from "../../pkg/kms/wrap.js";
import type { KeyPolicy, NewDataKey } from "./data_keys.js";
import { kmsErrors } from "./errors.js";
import type { RootKeys } from "./root_keys.js";

/**
 * New random keys, each wrapped under a root key and zeroed at once: only
 * the wrapped form leaves here.
 */
export interface KeyMint {
  /** The algorithm new data keys are for (kms.algorithm, checked). */
  readonly algorithm: Algorithm;
  /** A rotation's new data key, under the root key the database is under. */
  dataKey(version: number, reason: string, rootKeyId: string | undefined): NewDataKey;
  /** An index-key rotation's next key, under the root key the database is under. */
  indexKey(rootKeyId: string | undefined): Buffer;
  /** A key of its own kind (index, audit) made at first start, under `under`. */
  singleton(label: string, under: string): { wrapped: Buffer; keyHash: string };
}

/** Throws at once when the policy's algorithm is not supported. */
export function keyMint(roots: RootKeys, policy: KeyPolicy): KeyMint {
  const algorithm = assertAlgorithm(policy.algorithm);
  const wrapRandom = (under: string, label: string) => {
    const key = randomBytes(32);
    try {
      return roots.wrap(under, key, label);
    } finally {
      key.fill(0);
    }
  };
  // Written under the root key the database names: after a root-key rotation
  // by another instance, one this instance does not hold.
  const heldRootKey = (rootKeyId: string | undefined) => {
    const under = rootKeyId ?? roots.currentId;
    if (!roots.holds(under)) {
      throw kmsErrors.rootKeyMismatch(
        "the stored keys were re-wrapped under a root key this instance does not hold: restart it with the new kms.root_key",
      );
    }
    return under;
  };
  return {
    algorithm,
    dataKey(version, reason, rootKeyId) {
      const wrapped = wrapRandom(heldRootKey(rootKeyId), dataKeyLabel(version, algorithm));
      return {
        algorithm,
        wrapped,
        keyHash: fingerprint(wrapped),
        expiresAt: new Date(Date.now() + policy.rotateIntervalMs),
        metadata: { reason },
      };
    },
    indexKey: (rootKeyId) => wrapRandom(heldRootKey(rootKeyId), INDEX_KEY_LABEL),
    singleton(label, under) {
      const wrapped = wrapRandom(under, label);
      return { wrapped, keyHash: fingerprint(wrapped) };
    },
  };
}
