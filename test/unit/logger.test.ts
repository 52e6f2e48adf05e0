import { spawnSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, gathered, writeLimit } from "../../internal/pkg/log/logger.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()));
      cb();
    },
  });
  return { lines, log: createLogger({ level: "info", format: "json", destination }) };
}

describe("the logger", () => {
  it("writes one JSON object per line with level, time and message", () => {
    const { lines, log } = capture();
    log.info({ rpc: "kms.v1.KmsService/GetStatus" }, "rpc");
    expect(lines[0]).toMatchObject({
      level: "info",
      msg: "rpc",
      rpc: "kms.v1.KmsService/GetStatus",
    });
    expect(typeof lines[0]!.time).toBe("string");
  });

  it("redacts secret and personal fields at the top level and one level down", () => {
    const { lines, log } = capture();
    log.info(
      {
        password: "hunter2hunter2",
        root_key: "c2VjcmV0",
        user: { email: "ann@example.com", phone: "+15550100", name: "Ann" },
        request: { token: "t0k3n" },
      },
      "should never happen",
    );
    const text = JSON.stringify(lines);
    for (const secret of ["hunter2hunter2", "c2VjcmV0", "ann@example.com", "+15550100", "t0k3n"]) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain("[REDACTED]");
  });

  it("writes to a file descriptor the way it writes stdout, every line by the time it is flushed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kbts-log-fd-"));
    const file = join(dir, "log");
    const fd = openSync(file, "w");
    try {
      const log = createLogger({ level: "info", format: "json", fd });
      for (let i = 0; i < 500; i++) log.info({ i }, "rpc");
      await new Promise((done) => log.flush(done));
      const lines = readFileSync(file, "utf8").trimEnd().split("\n");
      expect(lines.map((l) => (JSON.parse(l) as { i: number }).i)).toEqual(
        Array.from({ length: 500 }, (_, i) => i),
      );
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("writes to its file descriptor what it still holds when the process exits", () => {
    const dir = mkdtempSync(join(tmpdir(), "kbts-log-fd-exit-"));
    const file = join(dir, "log");
    const logger = new URL("../../internal/pkg/log/logger.ts", import.meta.url).pathname;
    try {
      // Logged and exited at once: the lines are still gathered, not written.
      const script = `
        import { openSync } from "node:fs";
        const { createLogger } = await import(${JSON.stringify(logger)});
        const log = createLogger({ level: "info", format: "json", fd: openSync(${JSON.stringify(file)}, "w") });
        for (let i = 0; i < 3; i++) log.info({ i }, "rpc");
        process.exit(0);
      `;
      const run = spawnSync(
        process.execPath,
        ["--import", "tsx", "--input-type=module", "-e", script],
        {
          encoding: "utf8",
        },
      );
      expect(run.status).toBe(0);
      expect(run.stdout).toBe("");
      const lines = readFileSync(file, "utf8").trimEnd().split("\n");
      expect(lines.map((l) => (JSON.parse(l) as { i: number }).i)).toEqual([0, 1, 2]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("writes to its file descriptor when asked for pretty lines too, not to stdout", () => {
    const dir = mkdtempSync(join(tmpdir(), "kbts-log-fd-pretty-"));
    const file = join(dir, "log");
    const fd = openSync(file, "w");
    try {
      createLogger({ level: "info", format: "pretty", fd }).info("to the file");
      expect(readFileSync(file, "utf8")).toContain("to the file");
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("stdout's lines gathered", () => {
  const sink = () => {
    const writes: string[] = [];
    let synced = 0;
    return {
      writes,
      synced: () => synced,
      write: (chunk: Buffer) => writes.push(chunk.toString()),
      flush: (cb?: () => void) => cb?.(),
      flushSync: () => void synced++,
    };
  };
  const line = (i: number, bytes = 100) =>
    `${String(i).padStart(4, "0")}${"x".repeat(bytes - 5)}\n`;

  it("writes lines logged close together at once, in whole-line chunks of at most 4 KiB", async () => {
    const s = sink();
    const out = gathered(s, -1);
    const lines = Array.from({ length: 100 }, (_, i) => line(i));
    for (const l of lines) out.write(l);
    expect(s.writes, "nothing at once").toEqual([]);
    await new Promise((r) => setTimeout(r, 50));
    expect(s.writes.join("")).toBe(lines.join(""));
    for (const w of s.writes) {
      expect(Buffer.byteLength(w)).toBeLessThanOrEqual(4096);
      expect(w.endsWith("\n")).toBe(true);
    }
    // 40 lines of 100 bytes fit in 4096: three writes, not a hundred.
    expect(s.writes.length).toBe(3);
  });

  it("writes everything gathered at once when allowed a slab", async () => {
    const s = sink();
    const out = gathered(s, -1, 64 * 1024);
    const lines = Array.from({ length: 300 }, (_, i) => line(i));
    for (const l of lines) out.write(l);
    await new Promise((r) => setTimeout(r, 50));
    expect(s.writes).toEqual([lines.join("")]);
  });

  it("writes up to a slab at once only to a regular file it writes alone; to a pipe, or shared, at most 4 KiB", () => {
    const dir = mkdtempSync(join(tmpdir(), "kbts-log-"));
    const fifo = join(dir, "fifo");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    // Read end first (non-blocking), so that opening the write end does not wait.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const pipe = openSync(fifo, "w");
    const file = openSync(join(dir, "out"), "a");
    try {
      expect(writeLimit(file, false)).toBe(64 * 1024);
      expect(writeLimit(file, true)).toBe(4096);
      expect(writeLimit(pipe, false)).toBe(4096);
      expect(writeLimit(-1, false)).toBe(4096);
    } finally {
      for (const fd of [pipe, reader, file]) closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("counts bytes, not characters, and keeps a line longer than 4 KiB whole", async () => {
    const s = sink();
    const out = gathered(s, -1);
    const wide = `${"é".repeat(1500)}\n`; // 3001 bytes
    const long = `${"y".repeat(5000)}\n`;
    for (const l of [wide, wide, long, "z\n"]) out.write(l);
    await new Promise((r) => setTimeout(r, 50));
    expect(s.writes).toEqual([wide, wide, long, "z\n"]);
  });

  it("keeps every line, in order, across many slabs and beside lines longer than one", async () => {
    const s = sink();
    const out = gathered(s, -1);
    const huge = `${"h".repeat(30_000)}\n`;
    const lines = Array.from({ length: 3000 }, (_, i) =>
      i === 1234 ? huge : i % 7 === 0 ? `${i}${"é".repeat(60)}\n` : line(i, 50 + (i % 150)),
    );
    for (const l of lines) out.write(l);
    await new Promise((r) => setTimeout(r, 50));
    expect(s.writes.join("")).toBe(lines.join(""));
    for (const w of s.writes) {
      if (w !== huge) expect(Buffer.byteLength(w)).toBeLessThanOrEqual(4096);
      expect(w.endsWith("\n")).toBe(true);
    }
  });

  it("hands over what it holds when flushed (waiting for the destination)", () => {
    const s = sink();
    const out = gathered(s, -1);
    out.write(line(1));
    let called = false;
    out.flush(() => (called = true));
    expect(s.writes).toEqual([line(1)]);
    expect(called).toBe(true);
  });

  it("writes what it holds synchronously, after what the destination holds (at exit)", () => {
    const dir = mkdtempSync(join(tmpdir(), "kbts-log-"));
    const fd = openSync(join(dir, "out"), "a");
    try {
      const order: string[] = [];
      const out = gathered(
        {
          write: () => order.push("async write"),
          flush: () => undefined,
          flushSync: () => void order.push("destination flushed"),
        },
        fd,
      );
      out.write(line(1));
      out.write(line(2));
      out.flushSync();
      expect(order).toEqual(["destination flushed"]);
      expect(readFileSync(join(dir, "out"), "utf8")).toBe(line(1) + line(2));
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
