import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as h2connect } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KmsService } from "../../api/kms/v1/kms_pb.js";
import { grpcDefinition } from "../helpers/grpc_definition.js";
import type { App } from "../../cmd/server/wire.js";
import { startTestApp, useTestApps } from "../helpers/app.js";
import { rejection } from "../helpers/errors.js";
import { startServerProcess, writeServerConfig } from "../helpers/process.js";

const dir = mkdtempSync(join(tmpdir(), "kbts-tls-"));
const file = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });

// A CA, two server certificates for 127.0.0.1 (to swap on reload) and a client certificate.
function issue(name: string, cn: string, san?: string) {
  openssl(
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/CN=${cn}`,
  );
  if (san) writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\n`);
  openssl(
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-out",
    `${name}.crt`,
    ...(san ? ["-extfile", `${name}.ext`] : []),
  );
}

const ca = () => readFileSync(file("ca.crt"));

// The certificates, made before anything starts (hooks run in order).
beforeAll(() => {
  openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=test-ca",
  );
  issue("a", "server-a", "IP:127.0.0.1,DNS:localhost");
  issue("b", "server-b", "IP:127.0.0.1,DNS:localhost");
  issue("client", "client");
  copyFileSync(file("a.crt"), file("server.crt"));
  copyFileSync(file("a.key"), file("server.key"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Each test starts the service with its own TLS settings, on one database.
const ctx = useTestApps();
const start = (tls: Record<string, string>): Promise<App> =>
  ctx.start({ server: { grpc: { addr: "127.0.0.1:0" }, http: { addr: "127.0.0.1:0" }, tls } });

function grpcStatus(port: number, credentials: grpc.ChannelCredentials) {
  const Ctor = grpc.makeGenericClientConstructor(grpcDefinition(KmsService), "KmsService");
  const client = new Ctor(`127.0.0.1:${port}`, credentials);
  return new Promise<number>((resolve) =>
    (client as unknown as Record<string, (...a: unknown[]) => void>).getStatus!(
      {},
      { deadline: Date.now() + 5000 },
      (err: grpc.ServiceError | null) => {
        client.close();
        resolve(err?.code ?? 0);
      },
    ),
  );
}

const peerCn = (port: number) =>
  new Promise<string>((resolve, reject) => {
    const socket = tlsConnect({ port, host: "127.0.0.1", ca: ca(), ALPNProtocols: ["h2"] }, () => {
      resolve(String(socket.getPeerCertificate().subject.CN));
      socket.destroy();
    });
    socket.on("error", reject);
  });

describe("TLS", () => {
  it("serves both ports over TLS (gRPC, Connect over HTTP/2 and HTTP/1.1) and refuses plaintext", async () => {
    const app = await start({ cert_file: file("server.crt"), key_file: file("server.key") });
    expect(await grpcStatus(app.grpcPort, grpc.credentials.createSsl(ca()))).toBe(0);
    for (const httpVersion of ["2", "1.1"] as const) {
      const kms = createClient(
        KmsService,
        createConnectTransport({
          baseUrl: `https://127.0.0.1:${app.httpPort}`,
          httpVersion,
          nodeOptions: { ca: ca() },
        }),
      );
      expect((await kms.getStatus({})).initialized).toBe(true);
    }
    const web = createClient(
      KmsService,
      createGrpcTransport({
        baseUrl: `https://127.0.0.1:${app.httpPort}`,
        nodeOptions: { ca: ca() },
      }),
    );
    expect((await web.getStatus({})).initialized).toBe(true);
    expect(await grpcStatus(app.grpcPort, grpc.credentials.createInsecure())).toBe(
      grpc.status.UNAVAILABLE,
    );
    await expect(fetch(`http://127.0.0.1:${app.httpPort}/healthz`)).rejects.toThrow();
  });

  it("with client_ca_file, refuses a client without a certificate and serves one with", async () => {
    const app = await start({
      cert_file: file("a.crt"),
      key_file: file("a.key"),
      client_ca_file: file("ca.crt"),
    });
    expect(await grpcStatus(app.grpcPort, grpc.credentials.createSsl(ca()))).toBe(
      grpc.status.UNAVAILABLE,
    );
    const withCert = grpc.credentials.createSsl(
      ca(),
      readFileSync(file("client.key")),
      readFileSync(file("client.crt")),
    );
    expect(await grpcStatus(app.grpcPort, withCert)).toBe(0);
    const noCert = createClient(
      KmsService,
      createConnectTransport({
        baseUrl: `https://127.0.0.1:${app.httpPort}`,
        httpVersion: "2",
        nodeOptions: { ca: ca() },
      }),
    );
    // Refused in the handshake: the client sees its connection fail (connect-node
    // names that INTERNAL or UNAVAILABLE depending on when the reset lands).
    const err = await rejection(noCert.getStatus({}));
    expect([Code.Unavailable, Code.Internal]).toContain(err.code);
  });

  it("reloads the certificate for new connections without dropping open ones", async () => {
    const app = await start({ cert_file: file("server.crt"), key_file: file("server.key") });
    const session = h2connect(`https://127.0.0.1:${app.httpPort}`, { ca: ca() });
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request({ ":path": path });
        stream.on("response", (h) => resolve(Number(h[":status"])));
        stream.on("error", reject);
        stream.resume();
      });
    expect(await get("/healthz")).toBe(200);
    expect(await peerCn(app.httpPort)).toBe("server-a");
    copyFileSync(file("b.crt"), file("server.crt"));
    copyFileSync(file("b.key"), file("server.key"));
    expect(app.reloadTls()).toBe(true);
    expect(await peerCn(app.httpPort)).toBe("server-b");
    expect(await peerCn(app.grpcPort)).toBe("server-b");
    expect(await get("/healthz")).toBe(200);
    session.close();
    // A broken file keeps the current certificate.
    writeFileSync(file("server.key"), "not a key");
    expect(() => app.reloadTls()).toThrow(/server\.tls/);
    expect(await peerCn(app.httpPort)).toBe("server-b");
  });

  it("keeps a silent call open past idle_timeout, and a silent connection does not hold shutdown", async () => {
    // Not through start(): this test stops it itself.
    const app = await startTestApp(ctx.db.url, {
      server: {
        grpc: { addr: "127.0.0.1:0" },
        http: { addr: "127.0.0.1:0" },
        tls: { cert_file: file("a.crt"), key_file: file("a.key") },
        idle_timeout: "1s",
        shutdown_timeout: "20s",
      },
    });
    // A Health/Watch stream sends nothing after its first answer.
    const Ctor = grpc.makeGenericClientConstructor(
      {
        watch: {
          path: "/grpc.health.v1.Health/Watch",
          requestStream: false,
          responseStream: true,
          requestSerialize: (b: Buffer) => b,
          requestDeserialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      "Health",
    );
    const client = new Ctor(`127.0.0.1:${app.grpcPort}`, grpc.credentials.createSsl(ca()));
    const watch = (
      client as unknown as Record<string, (b: Buffer) => grpc.ClientReadableStream<Buffer>>
    ).watch!(Buffer.alloc(0));
    let failed: unknown;
    watch.on("error", (e) => (failed = e));
    watch.on("data", () => undefined);
    await new Promise((r) => setTimeout(r, 2500));
    expect(failed).toBeUndefined();
    watch.cancel();
    client.close();
    // Handshaken, then silent, on both ports: shutdown closes them at once.
    const silent = await Promise.all(
      [app.grpcPort, app.httpPort].map(
        (port) =>
          new Promise<ReturnType<typeof tlsConnect>>((resolve) => {
            const socket = tlsConnect({ port, host: "127.0.0.1", ca: ca() }, () => resolve(socket));
            socket.on("error", () => undefined);
          }),
      ),
    );
    expect(await app.stop()).toBe(true);
    for (const socket of silent) socket.destroy();
  });

  it("reloads on SIGHUP in the running service", async () => {
    copyFileSync(file("a.crt"), file("sighup.crt"));
    copyFileSync(file("a.key"), file("sighup.key"));
    const conf = writeServerConfig(
      file("sighup.yaml"),
      ctx.db.url,
      `tls: { cert_file: "${file("sighup.crt")}", key_file: "${file("sighup.key")}" }`,
    );
    const { server, ports: listening } = await startServerProcess(conf);
    try {
      expect(listening.tls).toBe("on");
      expect(await peerCn(listening.http)).toBe("server-a");
      copyFileSync(file("b.crt"), file("sighup.crt"));
      copyFileSync(file("b.key"), file("sighup.key"));
      server.child.kill("SIGHUP");
      await server.waitFor(/TLS certificates reloaded/);
      expect(await peerCn(listening.http)).toBe("server-b");
    } finally {
      server.child.kill("SIGTERM");
      expect(await server.exited).toBe(0);
    }
  });
});
