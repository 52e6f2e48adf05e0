import { rootKeyId } from "../../pkg/kms/rootkey.js";
import { unwrapKey, wrapKey } from "../../pkg/kms/wrap.js";

interface Held {
  key: Buffer;
  id: string;
}

/**
 * The root keys an instance holds: the configured one and, during a
 * rotation's window, the one it replaces. Stored keys are wrapped under the
 * key the database names (kms_root_key); they unwrap under either, so
 * instances keep serving while a rotation re-wraps them.
 */
export class RootKeys {
  private readonly current: Held;
  private previous: Held | undefined;
  /** The previous key's id once its window has ended (it is then not used). */
  readonly expiredPreviousId: string | undefined;
  readonly previousUntil: Date | undefined;

  constructor(
    current: Buffer,
    previous?: { key: Buffer; until: Date },
    private readonly now: () => number = Date.now,
  ) {
    this.current = { key: current, id: rootKeyId(current) };
    this.previousUntil = previous?.until;
    if (!previous) return;
    const held = { key: previous.key, id: rootKeyId(previous.key) };
    if (previous.until.getTime() > now()) this.previous = held;
    else {
      this.expiredPreviousId = held.id;
      previous.key.fill(0);
    }
  }

  get currentId(): string {
    return this.current.id;
  }

  /** The previous key's id while its window is open. */
  get previousId(): string | undefined {
    return this.usablePrevious()?.id;
  }

  holds(id: string): boolean {
    return id === this.current.id || id === this.usablePrevious()?.id;
  }

  /** Wraps under the held key `id` names (the one the database is under). */
  wrap(id: string, key: Buffer, label: string): Buffer {
    const held = [this.current, this.usablePrevious()].find((h) => h?.id === id);
    if (!held) throw new Error(`root key ${id} is not held by this instance`);
    return wrapKey(held.key, key, label);
  }

  /** Unwraps under whichever held key wrapped it; throws when neither did. */
  unwrap(wrapped: Buffer, label: string): { key: Buffer; id: string } {
    try {
      return { key: unwrapKey(this.current.key, wrapped, label), id: this.current.id };
    } catch (err) {
      const previous = this.usablePrevious();
      if (!previous) throw err;
      return { key: unwrapKey(previous.key, wrapped, label), id: previous.id };
    }
  }

  /**
   * The stored keys are under the current key (rotated, or never under the
   * previous one): the previous key is needed for nothing more, and is
   * dropped, so a row wrapped under it by anyone is refused from now on.
   */
  dropPrevious(): void {
    this.previous?.key.fill(0);
    this.previous = undefined;
  }

  forget(): void {
    this.current.key.fill(0);
    this.dropPrevious();
  }

  // Past its window the previous key is refused, however long the process runs.
  private usablePrevious(): Held | undefined {
    if (this.previous && this.previousUntil!.getTime() <= this.now()) this.dropPrevious();
    return this.previous;
  }
}
