import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { useTestApp } from "../helpers/app.js";

// Debian's python3-grpcio and python3-protobuf serve /usr/bin/python3 (.ci/run
// installs them). No generated code: the client learns every type through
// reflection, so this also proves the descriptors are complete.
const PYTHON = "/usr/bin/python3";

const ctx = useTestApp();

const probe = spawnSync(PYTHON, ["-c", "import grpc, google.protobuf"], { encoding: "utf8" });
// `npm test` must pass on a fresh machine with nothing but Node: there the
// test is skipped (and says why); under CI, which installs the packages, a
// missing package is a failure.
const runnable = probe.status === 0 || process.env.CI === "true";

describe("a Python grpcio client", () => {
  it.skipIf(!runnable)(
    "resolves every type from reflection and gets the same codes and reasons, gzip-compressed too",
    async () => {
      expect(
        probe.status,
        `install Debian's python3-grpcio and python3-protobuf: ${probe.stderr ?? probe.error}`,
      ).toBe(0);
      // Asynchronously: the server under test shares this process's event loop.
      const run = await promisify(execFile)(
        PYTHON,
        ["test/interop/grpcio_client.py", `127.0.0.1:${ctx.app.grpcPort}`],
        {
          encoding: "utf8",
          timeout: 60_000,
        },
      ).catch((err: { stderr?: string; message: string }) => {
        throw new Error(`grpcio client failed: ${err.stderr ?? err.message}`);
      });
      const seen = JSON.parse(run.stdout) as Record<string, unknown>;
      expect(seen.services).toEqual(
        expect.arrayContaining([
          "grpc.health.v1.Health",
          "kms.v1.KmsService",
          "user.v1.UserService",
        ]),
      );
      expect(seen.resolved).toEqual([
        "user.v1.GetUserRequest",
        "user.v1.User",
        "kms.v1.GetDataKeyRequest",
        "kms.v1.DataKey",
      ]);
      expect(seen.not_found).toEqual({
        code: "NOT_FOUND",
        reason: "USER_NOT_FOUND",
        domain: "user.v1",
        detail_type: "type.googleapis.com/google.rpc.ErrorInfo",
      });
      expect(seen.invalid).toMatchObject({
        code: "INVALID_ARGUMENT",
        reason: "VALIDATION_FAILED",
        domain: "user.v1",
      });
      // gzip-compressed, with text and binary metadata: the same answer.
      expect(seen.gzipped).toEqual(seen.not_found);
      expect(seen.gzipped_check).toBe("NOT_FOUND");
      expect(seen.health).toBe(1);
    },
  );
});
