import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createSecretKey,
  randomBytes,
} from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { HashFieldRequestSchema, KmsService } from "../api/kms/v1/kms_pb.js";
import { openKms } from "../cmd/server/kms.js";
import { openData } from "../internal/data/data.js";
import { parseConfig } from "../internal/conf/load.js";
import { run } from "../internal/migrate/runner.js";
import { migratorOptions } from "../internal/migrate/options.js";
import { createLogger } from "../internal/pkg/log/logger.js";
import { alternate, answeredFromMetrics, type Comparison, type Contender } from "./lib/compare.js";
import { startReference, type ReferenceKind } from "./lib/reference.js";
import { startBenchServer, type BenchServer } from "./lib/server.js";
import { median } from "./lib/stats.js";

const silent = createLogger({ level: "silent", format: "json" });
export const rootKeyB64 = Buffer.alloc(32, 5).toString("base64");

/** Operations per second of `fn` over about `ms`. */
async function rate(fn: () => unknown, ms: number): Promise<number> {
  let n = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    for (let i = 0; i < 500; i++) await fn();
    n += 500;
  }
  return n / ((performance.now() - started) / 1000);
}

/** Medians of ours and raw, in ops/s, and each round's ratio (ours ÷ raw). */
export interface Paired {
  ours: number;
  raw: number;
  ratios: number[];
}

/**
 * Ours against raw over `rounds` rounds, in turn, the order swapped every
 * round (ours first, then raw first), after a warm-up of both: a single
 * measurement of each favoured whichever ran in a better moment of the
 * machine or of the JIT, and moved ratios by a third between runs.
 */
async function paired(
  ours: () => unknown,
  raw: () => unknown,
  rounds: number,
  ms = 500,
): Promise<Paired> {
  for (let i = 0; i < 2000; i++) {
    await ours();
    await raw();
  }
  const o: number[] = [];
  const r: number[] = [];
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      o.push(await rate(ours, ms));
      r.push(await rate(raw, ms));
    } else {
      r.push(await rate(raw, ms));
      o.push(await rate(ours, ms));
    }
  }
  return { ours: median(o), raw: median(r), ratios: o.map((x, i) => x / r[i]!) };
}

/**
 * In process: our EncryptField/DecryptField (key cache, format, context,
 * usage count) against raw node:crypto AES-256-GCM with AAD on the same
 * values, and our blind index against a raw HMAC-SHA256, each pair in
 * alternating rounds (`paired`).
 */
export async function kmsInProcess(url: string, rounds: number) {
  const migrated = await run(migratorOptions(undefined, url, silent), { kind: "up" });
  if (migrated.failed) throw new Error(`migrate up failed: ${migrated.failed.message}`);
  const conf = parseConfig(
    { data: { database: { source: url } }, kms: { root_key: rootKeyB64, cache_ttl: "1h" } },
    "bench",
  );
  const data = await openData(conf.data!.database!, silent);
  const { cipher: kms, close } = await openKms(conf.kms!, { data, log: silent });
  try {
    // Raw node:crypto at its fastest: keys as KeyObjects (on Node 24 a
    // Buffer key costs some 15 µs more per call, in a check of its type).
    const key = createSecretKey(randomBytes(32));
    const aad = Buffer.from("users.email/row:1");
    const rows: { size: number; encrypt: Paired; decrypt: Paired }[] = [];
    for (const size of [16, 64, 1024]) {
      const value = randomBytes(size);
      const encrypt = await paired(
        () => kms.encryptField("users.email", value, aad),
        () => {
          const c = createCipheriv("aes-256-gcm", key, randomBytes(12));
          c.setAAD(aad);
          Buffer.concat([c.update(value), c.final()]);
          return c.getAuthTag();
        },
        rounds,
      );
      const sealed = (await kms.encryptField("users.email", value, aad)).ciphertext;
      const nonce = randomBytes(12);
      const c = createCipheriv("aes-256-gcm", key, nonce);
      c.setAAD(aad);
      const raw = Buffer.concat([c.update(value), c.final()]);
      const tag = c.getAuthTag();
      const decrypt = await paired(
        () => kms.decryptField("users.email", sealed, aad),
        () => {
          const d = createDecipheriv("aes-256-gcm", key, nonce);
          d.setAAD(aad);
          d.setAuthTag(tag);
          return Buffer.concat([d.update(raw), d.final()]);
        },
        rounds,
      );
      rows.push({ size, encrypt, decrypt });
    }
    const hmacKey = createSecretKey(randomBytes(32));
    const hash = await paired(
      () => kms.hashField("email", "alice@example.com"),
      () => createHmac("sha256", hmacKey).update("alice@example.com").digest("hex"),
      rounds,
    );
    return { rows, hash };
  } finally {
    await close();
    await data.close();
  }
}

// The HashField call both gRPC comparisons make.
export const hashRequest = toBinary(
  HashFieldRequestSchema,
  create(HashFieldRequestSchema, { fieldName: "email", value: "alice@example.com" }),
);
const path = `/${KmsService.typeName}/${KmsService.method.hashField.name}`;

/** Our server as a HashField contender: its calls counted from its /metrics. */
export const hashContender = (name: string, s: BenchServer): Contender => ({
  name,
  port: s.grpcPort,
  pid: s.pid,
  token: s.token,
  answered: () =>
    answeredFromMetrics(s.httpPort, KmsService.typeName, "HashField", s.token, s.processes),
});

/**
 * HashField over the gRPC port (authentication on, a JWT on every call)
 * against three references, each in a process of its own, alternating
 * rounds: a bare grpc-js server answering a fixed reply without work, and
 * grpc-js and node:http2 each doing the same work (reference.ts). The
 * references get the same authorization header and ignore it. Ours runs
 * twice: as shipped, and with a request line for failed calls only
 * (log.request_sample 0), what the request log costs.
 */
export async function hashFieldOverGrpc(
  url: string,
  seconds: number,
  rounds: number,
): Promise<Comparison> {
  const kinds: ReferenceKind[] = ["bare", "grpc-js", "http2"];
  const references = await Promise.all(kinds.map((k) => startReference(k)));
  const rootKey = Buffer.from(rootKeyB64, "base64");
  const ours = await startBenchServer(url, rootKey);
  const unlogged = await startBenchServer(url, rootKey, 1, 0).catch(async (err: unknown) => {
    await ours.stop();
    throw err;
  });
  try {
    return await alternate({
      path,
      request: hashRequest,
      rounds,
      seconds,
      contenders: [
        ...references.map((r, i) => ({ ...r, name: kinds[i]!, token: ours.token })),
        hashContender("ours", ours),
        hashContender("ours, request_sample 0", unlogged),
      ],
    });
  } finally {
    await Promise.all(references.map((r) => r.stop()));
    await Promise.all([ours.stop(), unlogged.stop()]);
  }
}

/** HashField throughput of the service as 2 processes (server.processes: 2) against 1, alternating rounds. */
export async function processesOverGrpc(
  url: string,
  seconds: number,
  rounds: number,
): Promise<Comparison> {
  const rootKey = Buffer.from(rootKeyB64, "base64");
  const one = await startBenchServer(url, rootKey, 1);
  const two = await startBenchServer(url, rootKey, 2);
  try {
    return await alternate({
      path,
      request: hashRequest,
      rounds,
      seconds,
      contenders: [hashContender("1 process", one), hashContender("2 processes", two)],
    });
  } finally {
    await one.stop();
    await two.stop();
  }
}
