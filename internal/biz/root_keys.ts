import { rootKeyId } from "../pkg/kms/rootkey.js";
import { unwrapKey, wrapKey } from "../pkg/kms/wrap.js";

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
  private readonly previous: Held | undefined;
  /** The previous key's id once its window has ended (it is then not used). */
  readonly expiredPreviousId: string | undefined;
  readonly previousUntil: Date | undefined;

  constructor(current: Buffer, previous?: { key: Buffer; until: Date }, now = new Date()) {
    this.current = { key: current, id: rootKeyId(current) };
    this.previousUntil = previous?.until;
    if (!previous) return;
    const held = { key: previous.key, id: rootKeyId(previous.key) };
    if (previous.until.getTime() > now.getTime()) this.previous = held;
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
    return this.previous?.id;
  }

  holds(id: string): boolean {
    return id === this.current.id || id === this.previous?.id;
  }

  /** Wraps under the held key `id` names (the one the database is under). */
  wrap(id: string, key: Buffer, label: string): Buffer {
    const held = [this.current, this.previous].find((h) => h?.id === id);
    if (!held) throw new Error(`root key ${id} is not held by this instance`);
    return wrapKey(held.key, key, label);
  }

  /** Unwraps under whichever held key wrapped it; throws when neither did. */
  unwrap(wrapped: Buffer, label: string): { key: Buffer; id: string } {
    try {
      return { key: unwrapKey(this.current.key, wrapped, label), id: this.current.id };
    } catch (err) {
      if (!this.previous) throw err;
      return { key: unwrapKey(this.previous.key, wrapped, label), id: this.previous.id };
    }
  }

  forget(): void {
    this.current.key.fill(0);
    this.previous?.key.fill(0);
  }
}
