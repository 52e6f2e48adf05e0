import { createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { readSecretFile } from "../../pkg/secret/file.js";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { errors, jwtVerify, type JWTPayload } from "jose";
import type { Auth_Jwt } from "../../conf/conf_pb.js";
import type { Caller } from "../../transport/caller.js";

/**
 * A token's caller and, when it was accepted, the span of time
 * (milliseconds since the epoch, [from, until)) in which the same token
 * would be accepted again: jose's checks of exp and nbf, ours of iat, all
 * that depends on the clock.
 */
export interface Verified {
  caller: Caller;
  valid?: { fromMs: number; untilMs: number };
}

export type JwtVerifier = (token: string) => Promise<Verified>;

interface Key {
  key: KeyObject | Uint8Array;
  algorithm: "HS256" | "RS256" | "EdDSA";
}

/** Longest `sub` accepted, in UTF-8 bytes: it names the caller in every log line. */
export const maxSubjectBytes = 256;

/** The lifetime bound when auth.jwt.max_lifetime is unset. */
const defaultMaxLifetimeS = 24 * 3600;

/**
 * Verifies JWTs with jose against the configured keys: signature, exp, nbf,
 * audience, and issuer when set; then the claims jose leaves alone (see
 * claimsProblem). The caller is `jwt:<sub>` with the scopes of
 * `scopes_claim`. Key files are read once, at start. `now` is the clock
 * (milliseconds since the epoch) every check reads.
 */
export function jwtVerifier(conf: Auth_Jwt, now: () => number = Date.now): JwtVerifier {
  const keys = loadKeys(conf);
  const claim = conf.scopesClaim || "scope";
  const toleranceS = conf.clockTolerance ? durationMs(conf.clockTolerance) / 1000 : 0;
  const maxLifetimeS = conf.maxLifetime ? durationMs(conf.maxLifetime) / 1000 : defaultMaxLifetimeS;
  const options = {
    audience: conf.audience,
    issuer: conf.issuer || undefined,
    clockTolerance: toleranceS,
    requiredClaims: ["exp", "sub"],
  };
  return async (token) => {
    let expired = false;
    const at = now();
    for (const { key, algorithm } of keys) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, {
          ...options,
          algorithms: [algorithm],
          currentDate: new Date(at),
        }));
      } catch (err) {
        // A valid signature with a stale exp is expired under every key.
        if (err instanceof errors.JWTExpired) expired = true;
        continue;
      }
      const problem = claimsProblem(payload, at / 1000, toleranceS, maxLifetimeS);
      if (problem) return { caller: { name: "anonymous", scopes: new Set(), problem } };
      return {
        caller: { name: `jwt:${payload.sub as string}`, scopes: scopesOf(payload, claim) },
        valid: validSpan(payload, toleranceS),
      };
    }
    const problem = expired ? "expired" : "invalid";
    return { caller: { name: "anonymous", scopes: new Set(), problem } };
  };
}

/**
 * When the time checks a token passed hold, in milliseconds: jose accepts
 * while exp > floor(now) - tolerance and nbf <= floor(now) + tolerance (now
 * in whole seconds), claimsProblem while iat <= now + tolerance. As bounds
 * on now: now < ceil(exp + tolerance), now >= ceil(nbf - tolerance), now >=
 * iat - tolerance.
 */
export function validSpan(
  payload: JWTPayload,
  toleranceS: number,
): { fromMs: number; untilMs: number } {
  const { exp, nbf, iat } = payload;
  const from = Math.max(
    nbf === undefined ? -Infinity : Math.ceil(nbf - toleranceS) * 1000,
    iat === undefined ? -Infinity : (iat - toleranceS) * 1000,
  );
  return { fromMs: from, untilMs: Math.ceil(exp! + toleranceS) * 1000 };
}

/**
 * What jose does not check of a validly signed token: `sub` is a non-empty
 * string of at most maxSubjectBytes without control characters (it becomes
 * the caller's name); `iat`, when present, is not in the future beyond the
 * clock tolerance; and with a maximum lifetime (0: none), `iat` is present
 * and `exp - iat` within it, so that no token is good for longer than its
 * issuer was allowed to make it. jose has checked that `exp` and `iat` are
 * numbers.
 */
export function claimsProblem(
  payload: JWTPayload,
  nowS: number,
  toleranceS: number,
  maxLifetimeS: number,
): Caller["problem"] {
  const sub: unknown = payload.sub;
  if (
    typeof sub !== "string" ||
    sub === "" ||
    Buffer.byteLength(sub) > maxSubjectBytes ||
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f]/.test(sub)
  ) {
    return "bad_subject";
  }
  const { iat, exp } = payload;
  if (iat !== undefined && iat > nowS + toleranceS) return "issued_in_future";
  if (maxLifetimeS > 0) {
    if (iat === undefined) return "no_issued_at";
    if (exp! - iat > maxLifetimeS) return "lifetime_too_long";
  }
  return undefined;
}

function scopesOf(payload: JWTPayload, claim: string): Set<string> {
  const value = payload[claim];
  if (typeof value === "string") return new Set(value.split(" ").filter(Boolean));
  if (Array.isArray(value)) return new Set(value.filter((v): v is string => typeof v === "string"));
  return new Set();
}

function loadKeys(conf: Auth_Jwt): Key[] {
  const keys: Key[] = [];
  if (conf.hs256SecretFile) {
    const secret = readSecretFile("auth.jwt.hs256_secret_file", conf.hs256SecretFile);
    // A public key there would let anyone holding it forge HS256 tokens.
    if (secret.subarray(0, 64).toString("latin1").includes("-----BEGIN")) {
      throw new Error("auth.jwt.hs256_secret_file: holds a PEM key, not a shared secret");
    }
    if (secret.length < 32) {
      throw new Error(
        `auth.jwt.hs256_secret_file: the secret must be at least 32 bytes (after one final line ending is dropped)`,
      );
    }
    keys.push({ key: new Uint8Array(secret), algorithm: "HS256" });
  }
  for (const file of conf.publicKeyFiles) {
    const key = createPublicKey(readFileSync(file));
    const type = key.asymmetricKeyType;
    if (type === "rsa") keys.push({ key, algorithm: "RS256" });
    else if (type === "ed25519") keys.push({ key, algorithm: "EdDSA" });
    else
      throw new Error(
        `auth.jwt.public_key_files: ${file}: an RSA or Ed25519 key is needed, not ${type}`,
      );
  }
  return keys;
}
