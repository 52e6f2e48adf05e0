import { appendFile, open } from "node:fs/promises";
import type { AuditCheckpoint } from "../biz/kms/audit_chain.js";
import {
  CheckpointTextError,
  checkpointJson,
  newestCheckpoint,
} from "../biz/kms/audit_checkpoint.js";
import type { CheckpointSink } from "../biz/kms/audit_watch.js";

/** How much of the file's end start-up reads for its newest checkpoint. */
const TAIL_BYTES = 64 * 1024;

/**
 * Checkpoints appended to a file as JSON lines (one write each, O_APPEND, so
 * several processes can share it). Start-up reads back its newest one. A
 * file that cannot be opened for appending stops start-up, naming the
 * setting: checkpoints silently lost would defeat them.
 */
export async function fileCheckpointSink(path: string): Promise<CheckpointSink> {
  await open(path, "a", 0o640).then(
    (f) => f.close(),
    (err: NodeJS.ErrnoException) => {
      throw new Error(
        `kms.audit_checkpoints.file: cannot open ${path} for appending: ${err.code ?? err.message}`,
      );
    },
  );
  return {
    name: "file",
    async write(cp) {
      await appendFile(path, `${JSON.stringify(checkpointJson(cp))}\n`, { mode: 0o640 });
    },
    async newest() {
      const file = await open(path, "r").catch((err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") return undefined;
        throw new Error(`${path}: ${err.code ?? err.message}`);
      });
      if (!file) return undefined;
      try {
        const { size } = await file.stat();
        const from = Math.max(0, size - TAIL_BYTES);
        const buf = Buffer.alloc(size - from);
        await file.read(buf, 0, buf.length, from);
        let text = buf.toString("utf8");
        // Begun mid-line: that line is not whole.
        if (from > 0) text = text.slice(text.indexOf("\n") + 1);
        const cp = newestCheckpoint(text, path);
        if (!cp && text.trim() !== "") {
          throw new CheckpointTextError(
            `${path}: holds no checkpoint in its last ${buf.length} bytes`,
          );
        }
        return cp;
      } finally {
        await file.close();
      }
    },
  };
}

/** Checkpoints POSTed as JSON; a call that takes longer than timeoutMs fails. */
export function httpCheckpointSink(url: string, timeoutMs: number): CheckpointSink {
  return {
    name: "http",
    async write(cp: AuditCheckpoint) {
      const res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(checkpointJson(cp)),
        signal: AbortSignal.timeout(timeoutMs),
      }).catch((err: Error & { cause?: { code?: string } }) => {
        // Never the URL: it may carry credentials.
        throw new Error(
          err.name === "TimeoutError"
            ? `no answer within ${timeoutMs}ms`
            : `cannot reach the endpoint: ${err.cause?.code ?? err.message}`,
        );
      });
      // The body is not needed; reading it frees the connection.
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) throw new Error(`the endpoint answered HTTP ${res.status}`);
    },
  };
}
