// Per-call values, typed by their key, never written in place: a value is
// added by making new values (and a new Call) for the handlers further in,
// so what a middleware attached cannot be changed behind its back and a
// call's values are those of the step that sees them.

/** A typed key for one per-call value, and what a call without it reads. */
export interface ContextKey<T> {
  readonly id: symbol;
  readonly defaultValue: T;
}

/** Creates a key; `description` names it in a debugger. */
export function createContextKey<T>(defaultValue: T, description?: string): ContextKey<T> {
  return { id: Symbol(description), defaultValue };
}

/** Immutable per-call values: `with` returns new values, the old ones unchanged. */
export interface ContextValues {
  /** The value under `key`, or its default when none was attached. */
  get<T>(key: ContextKey<T>): T;
  /** These values plus `key` = `value` (which hides a value under the same key). */
  with<T>(key: ContextKey<T>, value: T): ContextValues;
}

// A call carries two or three values: a list from the newest is cheaper to
// extend than a copied map, and as quick to read; each link is the values
// themselves, so attaching one costs one object. Not frozen (see call.ts):
// nothing in it is writable through its type.
class Values implements ContextValues {
  constructor(
    private readonly id: symbol | undefined,
    private readonly value: unknown,
    private readonly parent: Values | undefined,
  ) {}

  get<T>(key: ContextKey<T>): T {
    if (this.id === key.id) return this.value as T;
    return this.parent ? this.parent.get(key) : key.defaultValue;
  }

  with<T>(key: ContextKey<T>, value: T): ContextValues {
    return new Values(key.id, value, this);
  }
}

/** Values with nothing attached: every key reads its default. */
export const emptyContextValues: ContextValues = new Values(undefined, undefined, undefined);
