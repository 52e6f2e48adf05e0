import { create, createFileRegistry, fromBinary, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { getOption } from "@bufbuild/protobuf";
import { field as validateField } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { connect as connectHttp2 } from "node:http2";
import { describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus,
} from "../../third_party/grpc/health/v1/health_pb.js";
import { useTestApp } from "../helpers/app.js";
import { grpcClient, reflectOn, type ServerReflectionRequestInit } from "../helpers/clients.js";
import { failureOf, rejection } from "../helpers/errors.js";

const ctx = useTestApp();

const protocols = [
  "connect (HTTP/1.1, JSON)",
  "connect (h2c, binary)",
  "grpc-web (HTTP/1.1)",
  "grpc on the HTTP port (h2c)",
] as const;

/** A client transport to the HTTP port, for each protocol it serves. */
const connectTransport = (protocol: (typeof protocols)[number]): Transport => {
  const baseUrl = `http://127.0.0.1:${ctx.app.httpPort}`;
  switch (protocol) {
    case "connect (HTTP/1.1, JSON)":
      return createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false });
    case "connect (h2c, binary)":
      return createConnectTransport({ baseUrl, httpVersion: "2" });
    case "grpc-web (HTTP/1.1)":
      return createGrpcWebTransport({ baseUrl, httpVersion: "1.1" });
    case "grpc on the HTTP port (h2c)":
      return createGrpcTransport({ baseUrl });
  }
};

/** Both ports, by name, for it.each: gRPC (grpc-js) and HTTP (connect-node, h2c included). */
const ports = ["grpc", "http"] as const;
const portOf = (port: (typeof ports)[number]) =>
  port === "grpc" ? ctx.app.grpcPort : ctx.app.httpPort;

describe("gRPC port (@grpc/grpc-js)", () => {
  it.each(["", "kms.v1.KmsService", "user.v1.UserService"])(
    "answers grpc.health.v1 SERVING for %j (the server, then each service)",
    async (service) => {
      const health = grpcClient(Health, ctx.app.grpcPort);
      try {
        const res = await health.unary(Health.method.check, { service });
        expect(res.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      } finally {
        health.close();
      }
    },
  );

  it("answers NOT_FOUND with reason USER_NOT_FOUND for a user that does not exist", async () => {
    const users = grpcClient(UserService, ctx.app.grpcPort);
    try {
      const failure = await rejection(users.unary(UserService.method.getUser, { id: 1n }));
      expect(failure.code).toBe(grpc.status.NOT_FOUND);
      expect(failure.reason).toBe("USER_NOT_FOUND");
      expect(failure.domain).toBe("user.v1");
    } finally {
      users.close();
    }
  });

  it("rejects an invalid request with INVALID_ARGUMENT naming the field", async () => {
    const kms = grpcClient(KmsService, ctx.app.grpcPort);
    try {
      const failure = await rejection(kms.unary(KmsService.method.getDataKey, { version: 0 }));
      expect(failure.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(failure).toMatchObject({ reason: "VALIDATION_FAILED", domain: "kms.v1" });
      expect(failure.metadata).toMatchObject({ field: "version" });
      expect(failure.message).toContain("version");
    } finally {
      kms.close();
    }
  });
});

describe("requests a transport cannot take, on both ports", () => {
  const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff]);
  const limit = 4 * 1024 * 1024;

  function rawGrpcCall(port: number, body: Buffer) {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      "grpc.max_send_message_length": -1,
    });
    return new Promise<unknown>((resolve) =>
      client.makeUnaryRequest(
        "/user.v1.UserService/GetUser",
        (b: Buffer) => b,
        (b: Buffer) => b,
        body,
        (e) => {
          client.close();
          resolve(e);
        },
      ),
    ).then(failureOf);
  }

  async function post(contentType: string, body: Uint8Array | string) {
    return fetch(`http://127.0.0.1:${ctx.app.httpPort}/user.v1.UserService/GetUser`, {
      method: "POST",
      headers: { "content-type": contentType },
      body,
    });
  }

  function webFrame(payload: Uint8Array): Uint8Array {
    const frame = Buffer.alloc(5 + payload.length);
    frame.writeUInt32BE(payload.length, 1);
    frame.set(payload, 5);
    return frame;
  }

  const undecodable = "request is not a valid user.v1.GetUserRequest";

  it.each(ports)(
    "answers a gRPC body that does not decode INVALID_ARGUMENT with ErrorInfo, on the %s port",
    async (port) => {
      expect(await rawGrpcCall(portOf(port), garbage)).toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        message: undecodable,
        reason: "VALIDATION_FAILED",
        domain: "user.v1",
      });
    },
  );

  it("answers a Connect body that does not decode 400 invalid_argument with ErrorInfo", async () => {
    const binary = await post("application/proto", garbage);
    expect(binary.status).toBe(400);
    expect(await binary.json()).toMatchObject({
      code: "invalid_argument",
      message: undecodable,
      details: [{ type: "google.rpc.ErrorInfo" }],
    });
  });

  it("answers a gRPC-Web body that does not decode INVALID_ARGUMENT with status details", async () => {
    const web = await post("application/grpc-web+proto", webFrame(garbage));
    expect(web.headers.get("grpc-status")).toBe(String(grpc.status.INVALID_ARGUMENT));
    expect(web.headers.get("grpc-status-details-bin")).toBeTruthy();
  });

  const secret = "victim@example.com";
  it.each([`{"id": "${secret}"}`, `{"${secret}": 1}`, `{"id": 1, ${secret}`])(
    "never quotes what was sent: %s is refused invalid_argument without the value",
    async (body) => {
      const res = await post("application/json", body);
      expect(res.status).toBe(400);
      const text = await res.text();
      expect(text).not.toContain("victim");
      expect(JSON.parse(text)).toMatchObject({ code: "invalid_argument" });
    },
  );

  it.each(ports)(
    "answers a gRPC message over max_request_bytes RESOURCE_EXHAUSTED naming the limit, on the %s port",
    async (port) => {
      const big = Buffer.alloc(limit + 1024, 0);
      expect(await rawGrpcCall(portOf(port), big)).toMatchObject({
        code: grpc.status.RESOURCE_EXHAUSTED,
        message: `request larger than ${limit} bytes`,
        reason: "REQUEST_TOO_LARGE",
        metadata: { limit_bytes: String(limit) },
      });
    },
  );

  it("answers a Connect message over max_request_bytes 429 resource_exhausted with ErrorInfo", async () => {
    const big = Buffer.alloc(limit + 1024, 0);
    const connect = await post("application/proto", big);
    expect(connect.status).toBe(429);
    expect(await connect.json()).toMatchObject({
      code: "resource_exhausted",
      message: `request larger than ${limit} bytes`,
      details: [{ type: "google.rpc.ErrorInfo" }],
    });
  });

  it.each(ports)(
    "answers a malformed grpc-timeout INVALID_ARGUMENT on the %s port (grpc-js alone says INTERNAL)",
    async (name) => {
      const port = portOf(name);
      const session = connectHttp2(`http://127.0.0.1:${port}`);
      const status = await new Promise<string | undefined>((resolve) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/user.v1.UserService/GetUser",
          "content-type": "application/grpc",
          te: "trailers",
          "grpc-timeout": "1x",
        });
        let found: string | undefined;
        stream.on("response", (h) => (found ??= h["grpc-status"] as string | undefined));
        stream.on("trailers", (t) => (found ??= t["grpc-status"] as string | undefined));
        stream.on("close", () => resolve(found));
        stream.resume();
        stream.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
      });
      session.close();
      expect(status, `port ${port}`).toBe(String(grpc.status.INVALID_ARGUMENT));
    },
  );

  // The count of one label set in /metrics.
  async function count(method: string, transport: string, code: string): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${ctx.app.httpPort}/metrics`)).text();
    const line = text
      .split("\n")
      .find(
        (l) =>
          l.startsWith("rpc_server_duration_seconds_count{") &&
          l.includes(`method="${method}"`) &&
          l.includes(`transport="${transport}"`) &&
          l.includes(`code="${code}"`),
      );
    return line ? Number(line.split(" ").at(-1)) : 0;
  }

  function h2call(
    port: number,
    headers: Record<string, string>,
    body: Buffer,
    path = "/user.v1.UserService/DeleteUser",
  ) {
    const session = connectHttp2(`http://127.0.0.1:${port}`);
    return new Promise<Record<string, unknown>>((resolve) => {
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        te: "trailers",
        ...headers,
      });
      let found: Record<string, unknown> = {};
      stream.on("response", (h) => (found = { ...h }));
      stream.on("trailers", (t) => (found = { ...found, ...t }));
      stream.on("close", () => {
        session.close();
        resolve(found);
      });
      stream.resume();
      stream.end(body);
    });
  }

  it("logs and counts each refused request once, on both ports", async () => {
    const before = {
      connect: await count("DeleteUser", "connect", "INVALID_ARGUMENT"),
      grpc: await count("DeleteUser", "grpc", "INVALID_ARGUMENT"),
      tooLarge: await count("DeleteUser", "grpc", "RESOURCE_EXHAUSTED"),
      unimplemented: await count("DeleteUser", "grpc", "UNIMPLEMENTED"),
    };
    const url = `http://127.0.0.1:${ctx.app.httpPort}/user.v1.UserService/DeleteUser`;
    await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: garbage,
    });
    const grpcFrame = Buffer.concat([Buffer.from([0, 0, 0, 0, garbage.length]), garbage]);
    await h2call(ctx.app.grpcPort, { "content-type": "application/grpc" }, grpcFrame);
    // grpc-js refuses this one itself, then finds no message at the half-close.
    const claim = Buffer.concat([Buffer.from([0, 0, 0x50, 0, 0]), Buffer.alloc(160_000)]);
    const tooLarge = await h2call(ctx.app.grpcPort, { "content-type": "application/grpc" }, claim);
    expect(tooLarge["grpc-status"]).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    expect(await count("DeleteUser", "connect", "INVALID_ARGUMENT")).toBe(before.connect + 1);
    expect(await count("DeleteUser", "grpc", "INVALID_ARGUMENT")).toBe(before.grpc + 1);
    expect(await count("DeleteUser", "grpc", "RESOURCE_EXHAUSTED")).toBe(before.tooLarge + 1);
    expect(await count("DeleteUser", "grpc", "UNIMPLEMENTED")).toBe(before.unimplemented);
  }, 20_000);

  it.each(ports)(
    "answers a gRPC call without a message INVALID_ARGUMENT, on the %s port",
    async (name) => {
      const port = portOf(name);
      const answer = await h2call(port, { "content-type": "application/grpc" }, Buffer.alloc(0));
      expect(answer["grpc-status"], `port ${port}`).toBe(String(grpc.status.INVALID_ARGUMENT));
    },
  );

  const getUserUrl = () => `http://127.0.0.1:${ctx.app.httpPort}/user.v1.UserService/GetUser`;

  it("answers a refusal that connect would compress (a large one, gzip accepted)", async () => {
    const json = await fetch(getUserUrl(), {
      method: "POST",
      headers: { "content-type": "application/json", "accept-encoding": "gzip, br" },
      body: JSON.stringify({ id: "9".repeat(1100) }),
      signal: AbortSignal.timeout(5000),
    });
    expect(json.status).toBe(400);
    expect(await json.json()).toMatchObject({ message: undecodable });
  });

  it('never reads a body for its wording: an id of "timeout" is just not a valid request', async () => {
    const timeoutWord = await fetch(getUserUrl(), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"id":"timeout"}',
    });
    expect(await timeoutWord.json()).toMatchObject({ message: undecodable });
  });

  it('answers a huge gRPC-Web grpc-timeout INVALID_ARGUMENT "invalid timeout header", gzip accepted or not', async () => {
    const web = await h2call(
      ctx.app.httpPort,
      {
        "content-type": "application/grpc-web+proto",
        "grpc-timeout": "9".repeat(1200),
        "grpc-accept-encoding": "gzip",
      },
      Buffer.from([0, 0, 0, 0, 0]),
      "/user.v1.UserService/GetUser",
    );
    expect(web["grpc-status"]).toBe(String(grpc.status.INVALID_ARGUMENT));
    expect(decodeURIComponent(String(web["grpc-message"]))).toBe("invalid timeout header");
  });

  it("answers a body in an unknown compression 501 (UNIMPLEMENTED on gRPC-Web), saying which it accepts", async () => {
    const compression = await fetch(getUserUrl(), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "content-encoding": "zstd",
        "accept-encoding": "gzip",
      },
      body: "{}",
    });
    expect(compression.status).toBe(501);
    expect(compression.headers.get("accept-encoding")).toBe("gzip,br");
    // gRPC-Web says it in its own header.
    const web = await h2call(
      ctx.app.httpPort,
      { "content-type": "application/grpc-web+proto", "grpc-encoding": "zstd" },
      Buffer.from([1, 0, 0, 0, 0]),
      "/user.v1.UserService/GetUser",
    );
    expect(web["grpc-status"]).toBe(String(grpc.status.UNIMPLEMENTED));
    expect(web["grpc-accept-encoding"]).toBe("gzip,br");
  });
});

describe("server reflection", () => {
  const reflect = (path: string, requests: ServerReflectionRequestInit[]) =>
    reflectOn(ctx.app.grpcPort, path, requests);

  it.each(["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"])(
    "lists both services on %s",
    async (path) => {
      const [res] = await reflect(path, [{ messageRequest: { case: "listServices", value: "" } }]);
      expect(res?.messageResponse.case).toBe("listServicesResponse");
      const names =
        res?.messageResponse.case === "listServicesResponse"
          ? res.messageResponse.value.service.map((s) => s.name)
          : [];
      expect(names).toEqual(
        expect.arrayContaining([
          "kms.v1.KmsService",
          "user.v1.UserService",
          "grpc.health.v1.Health",
        ]),
      );
    },
  );

  it.each([UserService, KmsService] as DescService[])(
    "hands out complete descriptors for $typeName: every type resolves from reflection alone",
    async (service) => {
      const [res] = await reflect("grpc.reflection.v1.ServerReflection", [
        { messageRequest: { case: "fileContainingSymbol", value: service.typeName } },
      ]);
      if (res?.messageResponse.case !== "fileDescriptorResponse") throw new Error("no descriptors");
      const protos = res.messageResponse.value.fileDescriptorProto.map((b) =>
        fromBinary(FileDescriptorProtoSchema, b),
      );
      const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: protos }));
      const resolved = registry.getService(service.typeName);
      expect(resolved?.methods.map((m) => m.name)).toEqual(service.methods.map((m) => m.name));
      for (const method of resolved!.methods) {
        for (const message of [method.input, method.output]) {
          for (const f of message.fields) {
            if (f.message) expect(registry.getMessage(f.message.typeName)).toBeDefined();
          }
        }
      }
      // The buf.validate rules travel with the descriptors.
      const idField = registry.getMessage(
        `${service.file.proto.package}.${service === UserService ? "GetUserRequest" : "GetDataKeyRequest"}`,
      )!.fields[0]!;
      expect(getOption(idField, validateField).type.case).toBeDefined();
    },
  );

  it("serves the error types, so a reflection-only client decodes an ErrorInfo detail", async () => {
    const symbols = [
      "google.rpc.Status",
      "google.rpc.ErrorInfo",
      "google.rpc.BadRequest",
      "user.v1.ErrorReason",
      "kms.v1.ErrorReason",
    ];
    const responses = await reflect(
      "grpc.reflection.v1.ServerReflection",
      symbols.map((value) => ({ messageRequest: { case: "fileContainingSymbol", value } })),
    );
    const protos = responses.flatMap((r) =>
      r.messageResponse.case === "fileDescriptorResponse"
        ? r.messageResponse.value.fileDescriptorProto.map((b) =>
            fromBinary(FileDescriptorProtoSchema, b),
          )
        : [],
    );
    const unique = [...new Map(protos.map((p) => [p.name, p])).values()];
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: unique }));
    expect(registry.getEnum("user.v1.ErrorReason")?.values.map((v) => v.name)).toContain(
      "ERROR_REASON_USER_NOT_FOUND",
    );
    // A real failure's details, decoded with the reflected descriptors only.
    const users = grpcClient(UserService, ctx.app.grpcPort);
    const err = (await users
      .unary(UserService.method.getUser, { id: 987654n })
      .catch((e: unknown) => e)) as grpc.ServiceError;
    users.close();
    const status = fromBinary(
      registry.getMessage("google.rpc.Status")!,
      err.metadata.get("grpc-status-details-bin")[0] as Buffer,
    ) as unknown as { details: { typeUrl: string; value: Uint8Array }[] };
    const info = status.details.find((d) => d.typeUrl.endsWith("google.rpc.ErrorInfo"))!;
    const decoded = fromBinary(
      registry.getMessage("google.rpc.ErrorInfo")!,
      info.value,
    ) as unknown as {
      reason: string;
      domain: string;
    };
    expect(decoded).toMatchObject({ reason: "USER_NOT_FOUND", domain: "user.v1" });
  });

  it("answers NOT_FOUND for an unknown symbol", async () => {
    const [res] = await reflect("grpc.reflection.v1.ServerReflection", [
      { messageRequest: { case: "fileContainingSymbol", value: "no.such.Thing" } },
    ]);
    expect(res?.messageResponse.case).toBe("errorResponse");
    if (res?.messageResponse.case === "errorResponse")
      expect(res.messageResponse.value.errorCode).toBe(5);
  });
});

describe("HTTP port (connect-node)", () => {
  it.each(protocols)("answers NOT_FOUND with reason USER_NOT_FOUND over %s", async (name) => {
    const users = createClient(UserService, connectTransport(name));
    const failure = await rejection(users.getUser({ id: 1n }));
    expect(failure.code, name).toBe(Code.NotFound);
    expect(failure, name).toMatchObject({
      reason: "USER_NOT_FOUND",
      domain: "user.v1",
    });
  });

  it("rejects an invalid request exactly as the gRPC port does", async () => {
    const kms = createClient(KmsService, connectTransport("connect (h2c, binary)"));
    const viaConnect = await rejection(kms.getDataKey({ version: 0 }));
    const grpcKms = grpcClient(KmsService, ctx.app.grpcPort);
    const viaGrpc = await rejection(grpcKms.unary(KmsService.method.getDataKey, { version: 0 }));
    grpcKms.close();
    expect(viaConnect.code).toBe(Code.InvalidArgument);
    expect(Number(viaConnect.code)).toBe(Number(viaGrpc.code));
    expect(viaConnect.message).toBe(viaGrpc.message);
    expect(viaConnect.reason).toBe(viaGrpc.reason);
    expect(viaConnect.domain).toBe(viaGrpc.domain);
    expect(viaConnect.metadata).toEqual(viaGrpc.metadata);
  });

  const noSuchMethod = () =>
    `http://127.0.0.1:${ctx.app.httpPort}/user.v1.UserService/NoSuchMethod`;

  it("answers an unknown method over Connect 501 unimplemented with ErrorInfo", async () => {
    const connect = await fetch(noSuchMethod(), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(connect.status).toBe(501);
    const body = (await connect.json()) as { code: string; details: { type: string }[] };
    expect(body.code).toBe("unimplemented");
    expect(body.details[0]?.type).toBe("google.rpc.ErrorInfo");
  });

  it("answers an unknown method over gRPC-Web UNIMPLEMENTED", async () => {
    const web = await fetch(noSuchMethod(), {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: new Uint8Array([0, 0, 0, 0, 0]),
    });
    expect(web.headers.get("grpc-status")).toBe(String(grpc.status.UNIMPLEMENTED));
  });

  it.each(ports)(
    "answers an unknown method over gRPC UNIMPLEMENTED, on the %s port",
    async (name) => {
      const port = portOf(name);
      const Ctor = grpc.makeGenericClientConstructor(
        {
          noSuchMethod: {
            path: "/user.v1.UserService/NoSuchMethod",
            requestStream: false,
            responseStream: false,
            requestSerialize: (b: Buffer) => b,
            requestDeserialize: (b: Buffer) => b,
            responseSerialize: (b: Buffer) => b,
            responseDeserialize: (b: Buffer) => b,
          },
        },
        "Unknown",
      );
      const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      const code = await new Promise<number>((resolve) =>
        (client as unknown as Record<string, (...a: unknown[]) => void>).noSuchMethod!(
          Buffer.alloc(0),
          (err: grpc.ServiceError | null) => resolve(err?.code ?? 0),
        ),
      );
      client.close();
      expect(code, `port ${port}`).toBe(grpc.status.UNIMPLEMENTED);
    },
  );

  const base = () => `http://127.0.0.1:${ctx.app.httpPort}`;

  it("serves /healthz", async () => {
    const health = await fetch(`${base()}/healthz`);
    expect(health.status).toBe(200);
  });

  it("serves /readyz: ready, the database ok", async () => {
    const ready = await fetch(`${base()}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: "ready", checks: { database: "ok" } });
  });

  it("serves /metrics: calls counted by method, transport and code", async () => {
    // A refused GetDataKey on the gRPC port, so that the counts below exist whatever ran before.
    const kms = grpcClient(KmsService, ctx.app.grpcPort);
    await rejection(kms.unary(KmsService.method.getDataKey, { version: 0 }));
    kms.close();
    const metrics = await (await fetch(`${base()}/metrics`)).text();
    expect(metrics).toMatch(
      /rpc_server_duration_seconds_count\{[^}]*method="GetDataKey"[^}]*code="INVALID_ARGUMENT"/,
    );
    expect(metrics).toMatch(/rpc_server_duration_seconds_count\{[^}]*transport="grpc"/);
  });

  it("serves /openapi.yaml: the committed document, as YAML", async () => {
    const res = await fetch(`${base()}/openapi.yaml`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/yaml");
    expect(await res.text()).toBe(readFileSync("openapi.yaml", "utf8"));
  });

  it("answers 404 on a path it does not serve", async () => {
    expect((await fetch(`${base()}/nothing-here`)).status).toBe(404);
  });

  const preflight = { origin: "http://localhost:5173", "access-control-request-method": "POST" };

  it("answers a CORS preflight from an allowed origin, allowing Connect's headers", async () => {
    const url = `http://127.0.0.1:${ctx.app.httpPort}/user.v1.UserService/GetUser`;
    const allowed = await fetch(url, { method: "OPTIONS", headers: preflight });
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
    expect(allowed.headers.get("access-control-allow-headers")).toMatch(
      /connect-protocol-version/i,
    );
  });

  it("does not allow a CORS preflight from another origin", async () => {
    const url = `http://127.0.0.1:${ctx.app.httpPort}/user.v1.UserService/GetUser`;
    const other = await fetch(url, {
      method: "OPTIONS",
      headers: { ...preflight, origin: "http://evil.example" },
    });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});
