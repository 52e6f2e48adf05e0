import type { Logger } from "../../pkg/log/logger.js";
import { background, type Context } from "../context.js";
import type { DataKey, DataKeyRepo, KeyPolicy, Rotation } from "./data_keys.js";
import { kmsErrors } from "./errors.js";
import type { KeyMint } from "./key_mint.js";
import type { Keyring } from "./keyring.js";

export interface MaintenanceReport {
  expiredVersions: number[];
  rotation: Rotation | undefined;
}

/**
 * The life of data keys: rotated (on demand, on schedule, past their
 * encryption count), revoked, expired; never deleted. Every change is one
 * repository transaction announced to every instance; this instance's
 * keyring forgets its keys at once.
 */
export class KeyLifecycle {
  constructor(
    private readonly repo: DataKeyRepo,
    private readonly keyring: Keyring,
    private readonly mint: KeyMint,
    private readonly policy: KeyPolicy,
    private readonly log: Logger,
  ) {}

  async rotate(reason: string, ctx: Context = background): Promise<Rotation> {
    const rotation = await this.repo.rotate(
      (v, id) => this.mint.dataKey(v, reason || "on demand", id),
      undefined,
      ctx,
    );
    this.keyring.forget();
    this.log.info(
      { version: rotation.key.version, previous: rotation.previous?.version },
      "data key rotated",
    );
    return rotation;
  }

  /** Revokes a key; the active key is rotated out first. */
  async revoke(
    version: number,
    reason: string,
    ctx: Context = background,
  ): Promise<{ key: DataKey; active: DataKey }> {
    const current = await this.repo.active();
    if (current?.version === version) {
      // Only if it is still the active key: another instance may have rotated meanwhile.
      await this.repo.rotate(
        (v, id) => this.mint.dataKey(v, `rotated to revoke version ${version}`, id),
        (active) => active?.version === version,
        ctx,
      );
    }
    const key = await this.repo.revoke(version, reason, ctx);
    if (!key) {
      const existing = await this.repo.byVersion(version);
      if (!existing) throw kmsErrors.keyNotFound(version);
      if (existing.status === "revoked")
        return { key: existing, active: (await this.repo.active())! };
      throw kmsErrors.notReady();
    }
    this.keyring.forget();
    this.log.warn({ version }, "data key revoked");
    return { key, active: (await this.repo.active())! };
  }

  /** Expires keys past expires_at and rotates when the active key is due. Deletes nothing. */
  async maintenance(): Promise<MaintenanceReport> {
    const rotation = await this.rotateIfDue();
    const expiredVersions = await this.repo.expireDue();
    if (expiredVersions.length > 0) this.keyring.forget();
    return { expiredVersions, rotation };
  }

  /**
   * Rotates when the active key is past expires_at or its encryption count:
   * when every instance's timer fires together, the first one rotates and the
   * others find a fresh key and do nothing.
   */
  async rotateIfDue(): Promise<Rotation | undefined> {
    const due = (k: DataKey | undefined) =>
      k === undefined ||
      (k.expiresAt !== null && k.expiresAt.getTime() <= Date.now()) ||
      k.encryptionCount >= BigInt(this.policy.maxEncryptionsPerKey);
    const rotation = await this.repo.rotate((v, id) => this.mint.dataKey(v, "scheduled", id), due);
    if (!rotation.rotated) return undefined;
    this.keyring.forget();
    this.log.info(
      { version: rotation.key.version, previous: rotation.previous?.version },
      "data key rotated on schedule",
    );
    return rotation;
  }
}
