import { createContextKey } from "./context_values.js";

/** A caller as authentication found it. */
export interface Caller {
  /** A configured token's name, "jwt:<subject>", or "anonymous". */
  readonly name: string;
  readonly scopes: ReadonlySet<string>;
  /** Why the caller is not authenticated; undefined when it is. */
  readonly problem?: AuthProblem;
}

/**
 * Why a call is not authenticated. Past "invalid", each names a rule a
 * validly signed JWT broke: its signer can be told which.
 */
export type AuthProblem =
  | "missing"
  | "invalid"
  | "too_large"
  | "expired"
  | "bad_subject"
  | "issued_in_future"
  | "no_issued_at"
  | "lifetime_too_long";

/** Who is calling; attached by the outermost middleware, before any check. */
export const callerKey = createContextKey<Caller | undefined>(undefined, "caller");
