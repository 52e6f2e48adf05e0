import { createHash } from "node:crypto";
import type { Auth } from "../../conf/conf_pb.js";
import type { Caller } from "../../transport/caller.js";
import { jwtVerifier } from "./jwt.js";
import { allScopes } from "./scopes.js";

/**
 * Finds the caller of a request from its `authorization` header: at once for
 * a configured token or a JWT accepted before, asynchronously for a JWT to
 * verify. Never throws. With
 * `cheapOnly`, a JWT is not verified (its caller answers "invalid"): what an
 * address past its limit of failed authentications still gets.
 */
export type Authenticator = (
  authorization: string | null,
  cheapOnly?: boolean,
) => Caller | Promise<Caller>;

const anonymous = (problem?: Caller["problem"]): Caller => ({
  name: "anonymous",
  scopes: problem ? new Set() : new Set(allScopes),
  problem,
});

const BEARER = /^Bearer +([\x21-\x7e]+)$/i;

/** How many verified JWTs are kept when nothing else is said. */
export const defaultVerifiedJwts = 10_000;

/**
 * Tokens are looked up by their SHA-256 (the config never holds a token), then
 * tried as JWTs; an `authorization` value over auth.max_token_bytes is
 * neither. With authentication off, everyone is an anonymous caller with
 * every scope.
 *
 * What was found is kept by the header that carried it, written as
 * `Bearer <token>` (other spellings are read as that one), so that a header
 * seen before costs a lookup (the one seen last, a comparison): no parsing,
 * no hashing, no verifying. A configured token is kept for good (they are
 * few: one entry each). A JWT is kept only once accepted, and answered from memory only while a fresh
 * verification would accept it too (jwt.ts, validSpan: never past its exp,
 * never before its nbf); up to `verifiedJwts` of them, the oldest dropped
 * first. Only tokens the issuer signed enter, so a caller can push others
 * out only with tokens of its own, and what that costs them is one
 * verification. Refusals are not kept: a flood of bad tokens is the peer
 * limit's (observe.ts). `now` is the clock (ms since the epoch).
 */
export function createAuthenticator(
  conf: Auth | undefined,
  { now = Date.now, verifiedJwts = defaultVerifiedJwts } = {},
): Authenticator {
  if (!conf?.enabled) {
    const everyone = anonymous();
    return () => everyone;
  }
  const tokens = new Map<string, Caller>(
    conf.tokens.map((t) => [t.sha256.toLowerCase(), { name: t.name, scopes: new Set(t.scopes) }]),
  );
  const jwt = conf.jwt ? jwtVerifier(conf.jwt, now) : undefined;
  // Configured tokens by header: bounded by their number.
  const seen = new Map<string, Caller>();
  const verified = new Map<string, { caller: Caller; fromMs: number; untilMs: number }>();
  const accepted = (header: string): Caller | undefined => {
    const entry = verified.get(header);
    if (entry === undefined) return undefined;
    const t = now();
    if (t >= entry.fromMs && t < entry.untilMs) return entry.caller;
    // Verified again, it is refused with the reason a fresh look gives.
    forget(header);
    return undefined;
  };
  const keep = (header: string, caller: Caller, valid: { fromMs: number; untilMs: number }) => {
    if (verifiedJwts <= 0) return;
    if (verified.size >= verifiedJwts && !verified.has(header))
      forget(verified.keys().next().value!);
    verified.set(header, { caller, ...valid });
  };
  // The header answered last from memory, and its answer: a client's calls
  // come in runs, and comparing a header with the last one costs far less
  // than hashing its few hundred characters for a lookup. It answers only
  // what the lookup would (a JWT while it is valid and kept).
  let lastHeader: string | undefined;
  let lastCaller: Caller | undefined;
  let lastJwt: { fromMs: number; untilMs: number } | undefined;
  const remember = (header: string, caller: Caller) => {
    const entry = verified.get(header);
    lastHeader = header;
    lastCaller = caller;
    lastJwt = entry?.caller === caller ? entry : undefined;
  };
  function forget(header: string) {
    verified.delete(header);
    if (header === lastHeader) lastHeader = undefined;
  }
  // Header values reach us as one character per byte.
  const maxBytes = conf.maxTokenBytes;
  return (authorization, cheapOnly = false) => {
    if (!authorization) return anonymous("missing");
    if (authorization === lastHeader) {
      if (!lastJwt) return lastCaller!;
      const t = now();
      // A JWT is not even looked up for an address past its limit (cheapOnly);
      // past its validity the lookup below refuses and forgets it.
      if (!cheapOnly && t >= lastJwt.fromMs && t < lastJwt.untilMs) return lastCaller!;
    }
    const again = seen.get(authorization) ?? (cheapOnly ? undefined : accepted(authorization));
    if (again) {
      remember(authorization, again);
      return again;
    }
    if (authorization.length > maxBytes) return anonymous("too_large");
    const token = BEARER.exec(authorization)?.[1];
    if (!token) return anonymous("invalid");
    const header = `Bearer ${token}`;
    const respelt =
      header === authorization
        ? undefined
        : (seen.get(header) ?? (cheapOnly ? undefined : accepted(header)));
    if (respelt) return respelt;
    const known = tokens.get(createHash("sha256").update(token).digest("hex"));
    if (known) {
      if (seen.size < tokens.size) seen.set(header, known);
      return known;
    }
    if (jwt && !cheapOnly && token.split(".").length === 3) {
      return jwt(token).then(
        ({ caller, valid }) => {
          if (valid) keep(header, caller, valid);
          return caller;
        },
        () => anonymous("invalid"),
      );
    }
    return anonymous("invalid");
  };
}
