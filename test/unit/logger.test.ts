import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../internal/pkg/log/logger.js";

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
});
