import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { useTestApp } from "../helpers/app.js";
import { query } from "../helpers/catalog.js";
import { rejection } from "../helpers/errors.js";

const ctx = useTestApp();

describe("an altered kms_data_keys row", () => {
  it("answers DATA_LOSS (DATA_KEY_CORRUPT) and fails /readyz until the row is right again", async () => {
    const kms = createClient(
      KmsService,
      createConnectTransport({
        baseUrl: `http://127.0.0.1:${ctx.app.httpPort}`,
        httpVersion: "1.1",
      }),
    );
    const sealed = await kms.encryptField({ fieldName: "t.f", plaintext: new Uint8Array([1, 2]) });
    const version = sealed.keyVersion;
    // Rotate: the old key is now inactive, and every instance drops its cache.
    await kms.rotateDataKey({ reason: "test" });
    const [row] = await query<{ encrypted_key: Buffer }>(
      ctx.db.url,
      "SELECT encrypted_key FROM kms_data_keys WHERE version = $1",
      [version],
    );
    const wrapped = row!.encrypted_key;
    const altered = Buffer.from(wrapped);
    altered[altered.length - 1]! ^= 1;
    await query(ctx.db.url, "UPDATE kms_data_keys SET encrypted_key = $1 WHERE version = $2", [
      altered,
      version,
    ]);
    const err = await rejection(
      kms.decryptField({ fieldName: "t.f", ciphertext: sealed.ciphertext }),
    );
    expect(err.code).toBe(Code.DataLoss);
    expect(err.reason).toBe("DATA_KEY_CORRUPT");
    const ready = await fetch(`http://127.0.0.1:${ctx.app.httpPort}/readyz`);
    expect(ready.status).toBe(503);
    const body = (await ready.json()) as { checks: Record<string, string> };
    expect(body.checks.kms).toMatch(new RegExp(`data key version ${version} does not unwrap`));

    await query(ctx.db.url, "UPDATE kms_data_keys SET encrypted_key = $1 WHERE version = $2", [
      wrapped,
      version,
    ]);
    expect((await fetch(`http://127.0.0.1:${ctx.app.httpPort}/readyz`)).status).toBe(200);
    const opened = await kms.decryptField({ fieldName: "t.f", ciphertext: sealed.ciphertext });
    expect([...opened.plaintext]).toEqual([1, 2]);
  });
});
