import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { UserService } from "../../api/user/v1/user_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
} from "../../third_party/grpc/health/v1/health_pb.js";
import { useTestApp } from "../helpers/app.js";
import { grpcClient } from "../helpers/clients.js";
import { rejection } from "../helpers/errors.js";

async function until(what: string, condition: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`never: ${what}`);
}

describe("the database goes away and comes back", () => {
  // The service reaches its database through a proxy the test can cut.
  const ctx = useTestApp({ proxy: true });

  const healthOf = async (service: string) => {
    const health = grpcClient(Health, ctx.app.grpcPort);
    try {
      return (await health.unary(Health.method.check, { service })).status;
    } finally {
      health.close();
    }
  };

  it("answers UNAVAILABLE on both ports, turns health NOT_SERVING and /readyz 503 without addresses, then recovers", async () => {
    const users = grpcClient(UserService, ctx.app.grpcPort);
    const connectUsers = createClient(
      UserService,
      createConnectTransport({
        baseUrl: `http://127.0.0.1:${ctx.app.httpPort}`,
        httpVersion: "1.1",
      }),
    );
    try {
      await expect(users.unary(UserService.method.getUser, { id: 1n })).rejects.toMatchObject({
        code: grpc.status.NOT_FOUND,
      });
      ctx.proxy.down();

      const viaGrpc = await rejection(users.unary(UserService.method.getUser, { id: 1n }));
      expect(viaGrpc.code).toBe(grpc.status.UNAVAILABLE);
      expect(viaGrpc).toMatchObject({ reason: "UNAVAILABLE", domain: "user.v1" });
      const viaConnect = await rejection(connectUsers.getUser({ id: 1n }));
      expect(viaConnect.code).toBe(Code.Unavailable);
      expect(viaConnect.reason).toBe("UNAVAILABLE");

      await until("health NOT_SERVING", async () => (await healthOf("")) === Serving.NOT_SERVING);
      for (const service of ["user.v1.UserService", "kms.v1.KmsService"])
        expect(await healthOf(service)).toBe(Serving.NOT_SERVING);
      const ready = await fetch(`http://127.0.0.1:${ctx.app.httpPort}/readyz`);
      expect(ready.status).toBe(503);
      const body = await ready.text();
      expect(JSON.parse(body).checks.database).toBe("unreachable");
      const { hostname, port } = new URL(ctx.db.url);
      expect(body).not.toContain(hostname);
      expect(body).not.toContain(port);
      expect(body).not.toContain(new URL(ctx.proxy.url).port);

      ctx.proxy.up();
      await until("health SERVING", async () => (await healthOf("")) === Serving.SERVING);
      await expect(users.unary(UserService.method.getUser, { id: 1n })).rejects.toMatchObject({
        code: grpc.status.NOT_FOUND,
      });
      expect((await fetch(`http://127.0.0.1:${ctx.app.httpPort}/readyz`)).status).toBe(200);
    } finally {
      users.close();
    }
  });
});
