/** What a use case knows of the call it serves: the part of Go's context.Context that writes need. */
export interface Context {
  /**
   * Call right before a write commits. Throws the call's DEADLINE_EXCEEDED
   * when its deadline has passed, so nothing is written; otherwise the call
   * waits for the commit's outcome rather than time out, so that
   * DEADLINE_EXCEEDED always means "not written".
   */
  beginCommit(): void;
  /** Who asked, for the audit trail; absent for the service's own work. */
  readonly caller?: { readonly name: string };
}

/** For work outside any call (timers, tools, tests): no deadline. */
export const background: Context = { beginCommit: () => undefined };
