import type { KeyEvents } from "../../../internal/biz/kms/key_events.js";

/** biz.KeyEvents in memory: `announce()` is another instance's change arriving. */
export class FakeKeyEvents implements KeyEvents {
  private readonly listeners = new Set<() => void>();

  get watching(): number {
    return this.listeners.size;
  }

  announce(): void {
    for (const l of this.listeners) l();
  }

  async watch(onChange: () => void): Promise<() => Promise<void>> {
    const listener = () => onChange();
    this.listeners.add(listener);
    return async () => void this.listeners.delete(listener);
  }
}
