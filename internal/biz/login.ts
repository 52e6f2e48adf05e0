/**
 * Failed-login counters by login (its blind index, never the login itself),
 * implemented in data: in Redis so that every instance sees one count, or in
 * memory.
 */
export interface LoginAttempts {
  /** Milliseconds until `key` may try again; 0 when it may now. */
  lockedFor(key: string): Promise<number>;
  /** Counts a failure; the limit reached locks `key` for the lock duration. */
  failed(key: string): Promise<void>;
  /** Clears the count after a successful login. */
  succeeded(key: string): Promise<void>;
}

/** Login protection as configured (auth.max_login_attempts, auth.lock_duration). */
export interface LoginPolicy {
  /** 0: no protection. */
  maxAttempts: number;
  lockMs: number;
}
