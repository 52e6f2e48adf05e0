import { flood, largeRequest, memoryAround, tally, type FloodPort } from "./lib/flood.js";
import { startBenchServer } from "./lib/server.js";
import { rootKeyB64 } from "./kms.js";

export interface MemoryRow {
  kind: FloodPort;
  connections: number;
  calls: number;
  /** Resident memory, MiB: before the flood, its peak, `settleMs` after. */
  before: number;
  peak: number;
  after: number;
  answers: string;
}

export interface MemoryBench {
  /** The warmed server's resident memory before any flood, MiB. */
  idle: number;
  /** server.max_inflight_request_bytes, MiB. */
  budget: number;
  settleMs: number;
  rows: MemoryRow[];
}

const scenarios: { kind: FloodPort; connections: number }[] = [
  { kind: "grpc", connections: 1 },
  { kind: "grpc", connections: 10 },
  { kind: "connect-h2", connections: 1 },
  { kind: "connect-h2", connections: 10 },
  { kind: "connect-http1", connections: 300 },
];

/**
 * One server with the default in-flight budget, 300 concurrent 3.9 MB
 * EncryptField requests (a valid JWT on each) per scenario, one after the
 * other: its resident memory at the peak and `settleMs` after each.
 */
export async function memoryBench(
  url: string,
  settleMs: number,
  calls = 300,
): Promise<MemoryBench> {
  const server = await startBenchServer(url, Buffer.from(rootKeyB64, "base64"));
  try {
    const message = largeRequest();
    const base = { message, token: server.token };
    // Warm both ports (code loaded, pools filled) so that what grows is what the requests hold.
    for (const s of scenarios) await flood({ ...base, ...s, calls: 3, port: port(server, s.kind) });
    await new Promise((r) => setTimeout(r, 2000));
    const rows: MemoryRow[] = [];
    let idle = NaN;
    for (const s of scenarios) {
      let answers: string[] = [];
      const m = await memoryAround(
        server.pid,
        async () => (answers = await flood({ ...base, ...s, calls, port: port(server, s.kind) })),
        settleMs,
      );
      if (Number.isNaN(idle)) idle = m.before;
      rows.push({ ...s, calls, ...m, answers: tally(answers) });
    }
    const budget = server.conf.server!.maxInflightRequestBytes / 2 ** 20;
    return { idle, budget, settleMs, rows };
  } finally {
    await server.stop();
  }
}

function port(server: { grpcPort: number; httpPort: number }, kind: FloodPort) {
  return kind === "grpc" ? server.grpcPort : server.httpPort;
}
