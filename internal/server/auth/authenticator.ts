import { createHash } from "node:crypto";
import type { Auth } from "../../conf/conf_pb.js";
import type { Caller } from "../../transport/caller.js";
import { jwtVerifier } from "./jwt.js";
import { allScopes } from "./scopes.js";

/**
 * Finds the caller of a request from its `authorization` header: at once for
 * a configured token, asynchronously for a JWT. Never throws. With
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

/**
 * Tokens are looked up by their SHA-256 (the config never holds a token), then
 * tried as JWTs; an `authorization` value over auth.max_token_bytes is
 * neither. With authentication off, everyone is an anonymous caller with
 * every scope.
 */
export function createAuthenticator(conf: Auth | undefined): Authenticator {
  if (!conf?.enabled) {
    const everyone = anonymous();
    return () => everyone;
  }
  const tokens = new Map<string, Caller>(
    conf.tokens.map((t) => [t.sha256.toLowerCase(), { name: t.name, scopes: new Set(t.scopes) }]),
  );
  const jwt = conf.jwt ? jwtVerifier(conf.jwt) : undefined;
  // The configured tokens as last presented, so that a known token is
  // hashed once, not on every call. Only tokens found in the config enter,
  // so its size is bounded by theirs (each has one spelling after "Bearer ").
  const seen = new Map<string, Caller>();
  // Header values reach us as one character per byte.
  const maxBytes = conf.maxTokenBytes;
  return (authorization, cheapOnly = false) => {
    if (!authorization) return anonymous("missing");
    if (authorization.length > maxBytes) return anonymous("too_large");
    const token = BEARER.exec(authorization)?.[1];
    if (!token) return anonymous("invalid");
    const cached = seen.get(token);
    if (cached) return cached;
    const known = tokens.get(createHash("sha256").update(token).digest("hex"));
    if (known) {
      if (seen.size < tokens.size) seen.set(token, known);
      return known;
    }
    if (jwt && !cheapOnly && token.split(".").length === 3) {
      return jwt(token).catch(() => anonymous("invalid"));
    }
    return anonymous("invalid");
  };
}
