import { connect as h2connect } from "node:http2";
import { connect as netConnect } from "node:net";
import { readFile, writeFile } from "node:fs/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { EncryptFieldRequestSchema, KmsService } from "../../api/kms/v1/kms_pb.js";

// Many large requests at once, as a careless or hostile client sends them:
// what the server's memory does while it refuses what its in-flight budget
// cannot hold, and after. The bench prints the figures; a reliability test
// holds the server to the same bound with a margin.

/** An EncryptField request carrying `bytes` of plaintext (past its 1 MiB rule: refused once read). */
export function largeRequest(bytes = 3_900_000): Uint8Array {
  return toBinary(
    EncryptFieldRequestSchema,
    create(EncryptFieldRequestSchema, {
      fieldName: "users.email",
      plaintext: new Uint8Array(bytes).fill(0x61),
    }),
  );
}

const path = `/${KmsService.typeName}/${KmsService.method.encryptField.name}`;

export type FloodPort = "grpc" | "connect-h2" | "connect-http1";

export interface FloodOptions {
  port: number;
  /** gRPC on port 9000, Connect over h2c or HTTP/1.1 on the HTTP port. */
  kind: FloodPort;
  calls: number;
  /** HTTP/2 connections the calls share; HTTP/1.1 opens one per call. */
  connections: number;
  message: Uint8Array;
  token?: string;
}

/**
 * Sends `calls` requests at once and resolves with how each was answered:
 * the grpc-status (gRPC) or HTTP status (Connect), "none" when the call was
 * cut without one.
 */
export async function flood(opts: FloodOptions): Promise<string[]> {
  if (opts.kind === "connect-http1") return floodHttp1(opts);
  const auth = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const grpc = opts.kind === "grpc";
  const body = grpc ? framed(opts.message) : opts.message;
  // The client buffers what the server does not take yet: no session limit.
  const sessions = Array.from({ length: opts.connections }, () =>
    h2connect(`http://127.0.0.1:${opts.port}`, { maxSessionMemory: 1 << 20 }),
  );
  for (const s of sessions) s.on("error", () => undefined);
  try {
    return await Promise.all(
      Array.from(
        { length: opts.calls },
        (_, i) =>
          new Promise<string>((resolve) => {
            const stream = sessions[i % sessions.length]!.request({
              ":method": "POST",
              ":path": path,
              "content-type": grpc ? "application/grpc" : "application/proto",
              ...(grpc ? { te: "trailers" } : {}),
              ...auth,
            });
            let status = "none";
            const read = (h: Record<string, unknown>) => {
              const s = grpc ? h["grpc-status"] : h[":status"];
              if (s !== undefined) status = String(s);
            };
            stream.on("response", read);
            stream.on("trailers", read);
            stream.on("error", () => undefined);
            stream.on("close", () => resolve(status));
            stream.resume();
            stream.end(body);
          }),
      ),
    );
  } finally {
    for (const s of sessions) s.close();
  }
}

function floodHttp1(opts: FloodOptions): Promise<string[]> {
  const auth = opts.token ? `authorization: Bearer ${opts.token}\r\n` : "";
  const head =
    `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/proto\r\n${auth}` +
    `connection: close\r\ncontent-length: ${opts.message.byteLength}\r\n\r\n`;
  return Promise.all(
    Array.from(
      { length: opts.calls },
      () =>
        new Promise<string>((resolve) => {
          const socket = netConnect(opts.port, "127.0.0.1");
          let first = "";
          socket.on("data", (c: Buffer) => {
            if (first.length < 64) first += c.toString("latin1", 0, 64);
          });
          socket.on("error", () => undefined);
          socket.on("close", () => resolve(/^HTTP\/1.1 (\d{3})/.exec(first)?.[1] ?? "none"));
          socket.write(head);
          socket.end(opts.message);
        }),
    ),
  );
}

function framed(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.byteLength);
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

/** How many answers had each status, e.g. "8: 260, 3: 40". */
export function tally(answers: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const a of answers) counts.set(a, (counts.get(a) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([s, n]) => `${s}: ${n}`)
    .join(", ");
}

export interface MemoryPhase {
  /** Resident memory before, MiB. */
  before: number;
  /** The highest it reached while the work ran, MiB. */
  peak: number;
  /** Resident memory `settleMs` after the work ended, MiB. */
  after: number;
}

/**
 * Runs `work` and reports the process's resident memory around it. The peak
 * is the kernel's high-water mark, reset first (clear_refs 5); where that
 * cannot be written it is sampled every 20 ms instead.
 */
export async function memoryAround(
  pid: number,
  work: () => Promise<unknown>,
  settleMs: number,
): Promise<MemoryPhase> {
  const before = await residentMiB(pid, "VmRSS");
  const reset = await writeFile(`/proc/${pid}/clear_refs`, "5").then(
    () => true,
    () => false,
  );
  let sampled = before;
  const sampler = reset
    ? undefined
    : setInterval(() => {
        void residentMiB(pid, "VmRSS").then((m) => (sampled = Math.max(sampled, m)));
      }, 20);
  try {
    await work();
  } finally {
    clearInterval(sampler);
  }
  const peak = reset ? await residentMiB(pid, "VmHWM") : sampled;
  await new Promise((r) => setTimeout(r, settleMs));
  return { before, peak, after: await residentMiB(pid, "VmRSS") };
}

async function residentMiB(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1];
  if (kb === undefined) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(kb) / 1024;
}
