/**
 * Login attempts counted by key (a keyed hash of a login as typed and of the
 * caller; never the login itself), implemented in data: in Redis so that every instance
 * sees one count, or in memory. An attempt is counted before the password is
 * checked, so concurrent guesses cannot all slip in under the limit.
 */
export interface LoginAttempts {
  /**
   * Counts an attempt for `key`: 0 when it may go ahead, or the milliseconds
   * until the lock lifts (the attempt is then not counted).
   */
  attempt(key: string): Promise<number>;
  /** Clears the count after a successful login. */
  succeeded(key: string): Promise<void>;
}

/** Login protection as configured (auth.max_login_attempts, auth.lock_duration). */
export interface LoginPolicy {
  /** Attempts allowed before the lock; 0: no protection. */
  maxAttempts: number;
  lockMs: number;
}
