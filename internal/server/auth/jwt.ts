import { createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { errors, jwtVerify, type JWTPayload } from "jose";
import type { Auth_Jwt } from "../../conf/conf_pb.js";
import type { Caller } from "../call.js";

export type JwtVerifier = (token: string) => Promise<Caller>;

interface Key {
  key: KeyObject | Uint8Array;
  algorithm: "HS256" | "RS256" | "EdDSA";
}

/**
 * Verifies JWTs with jose against the configured keys: signature, exp, nbf,
 * audience, and issuer when set. The caller is `jwt:<sub>` with the scopes
 * of `scopes_claim`. Key files are read once, at start.
 */
export function jwtVerifier(conf: Auth_Jwt): JwtVerifier {
  const keys = loadKeys(conf);
  const claim = conf.scopesClaim || "scope";
  const options = {
    audience: conf.audience,
    issuer: conf.issuer || undefined,
    clockTolerance: conf.clockTolerance ? durationMs(conf.clockTolerance) / 1000 : 0,
    requiredClaims: ["exp", "sub"],
  };
  return async (token) => {
    let expired = false;
    for (const { key, algorithm } of keys) {
      try {
        const { payload } = await jwtVerify(token, key, { ...options, algorithms: [algorithm] });
        return { name: `jwt:${payload.sub}`, scopes: scopesOf(payload, claim) };
      } catch (err) {
        // A valid signature with a stale exp is expired under every key.
        if (err instanceof errors.JWTExpired) expired = true;
      }
    }
    return { name: "anonymous", scopes: new Set(), problem: expired ? "expired" : "invalid" };
  };
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
    const secret = readFileSync(conf.hs256SecretFile);
    // A public key there would let anyone holding it forge HS256 tokens.
    if (secret.subarray(0, 64).toString("latin1").includes("-----BEGIN")) {
      throw new Error("auth.jwt.hs256_secret_file: holds a PEM key, not a shared secret");
    }
    if (secret.length < 32) {
      throw new Error(`auth.jwt.hs256_secret_file: the secret must be at least 32 bytes`);
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
