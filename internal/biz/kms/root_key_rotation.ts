import type { Logger } from "../../pkg/log/logger.js";
import { background, type Context } from "../context.js";
import { kmsErrors } from "./errors.js";
import type { Keyring } from "./keyring.js";
import type { RootKeys } from "./root_keys.js";
import type { StoredKeys } from "./stored_keys.js";

export interface RootKeyRotated {
  /** False when the stored keys were already under the configured root key. */
  rotated: boolean;
  rewrapped: number;
  rootKeyId: string;
  previousRootKeyId: string;
}

/**
 * Re-wraps every stored key (data keys, index key, audit key) from the
 * previous root key to the configured one, in one transaction. Every
 * instance of the rolling deploy must hold both keys first (docs/keys.md).
 */
export class RootKeyRotation {
  constructor(
    private readonly stored: Pick<StoredKeys, "rootKeyId" | "rewrapAll">,
    private readonly keyring: Keyring,
    private readonly roots: RootKeys,
    private readonly log: Logger,
  ) {}

  async rotate(ctx: Context = background): Promise<RootKeyRotated> {
    const from = this.roots.previousId;
    const to = this.roots.currentId;
    if (!from) {
      // Asked again after the rotation (a deploy script's retry): done already.
      if ((await this.stored.rootKeyId()) === to) {
        return { rotated: false, rewrapped: 0, rootKeyId: to, previousRootKeyId: "" };
      }
      throw kmsErrors.rootKeyMismatch(
        "this instance has no kms.previous_root_key (or its window has ended): nothing to rotate from",
      );
    }
    const result = await this.stored.rewrapAll(
      {
        from,
        to,
        rewrap: (wrapped, label) => {
          let key: Buffer;
          try {
            key = this.roots.unwrap(wrapped, label).key;
          } catch {
            throw kmsErrors.storedKeyCorrupt(label);
          }
          try {
            return this.roots.wrap(to, key, label);
          } finally {
            key.fill(0);
          }
        },
      },
      ctx,
    );
    this.keyring.forget();
    this.roots.dropPrevious();
    if (result.rotated) {
      this.log.warn(
        { rewrapped: result.rewrapped },
        "root key rotated: every stored key re-wrapped",
      );
    }
    return { ...result, rootKeyId: to, previousRootKeyId: from };
  }
}
