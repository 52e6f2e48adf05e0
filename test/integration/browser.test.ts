import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { build } from "esbuild";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useTestApp } from "../helpers/app.js";

// A page from another local origin calls the API from headless Chromium
// (Debian's chromium, driven by playwright-core) with connect-web, over
// Connect and gRPC-Web, with a bearer token. CI installs chromium; elsewhere
// the test is skipped without it.
const CHROMIUM = "/usr/bin/chromium";
const available = existsSync(CHROMIUM);
if (!available && process.env.CI) throw new Error(`${CHROMIUM} is required under CI`);

const token = randomBytes(24).toString("base64url");
let page: Server;
let browser: Browser;

// Without chromium nothing starts (the test is skipped).
const ctx = available
  ? useTestApp({
      config: {
        server: {
          grpc: { addr: "127.0.0.1:0" },
          http: { addr: "127.0.0.1:0", cors_allowed_origins: ["http://127.0.0.1:*"] },
        },
        auth: {
          enabled: true,
          tokens: [
            {
              name: "web-app",
              sha256: createHash("sha256").update(token).digest("hex"),
              scopes: ["users.read", "users.write", "pii.read"],
            },
          ],
        },
      },
    })
  : undefined;

beforeAll(async () => {
  if (!available) return;
  const bundle = await build({
    entryPoints: ["test/browser/client.ts"],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
  });
  const script = bundle.outputFiles[0]!.text;
  page = createServer((req, res) => {
    if (req.url === "/client.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(script);
      return;
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end('<!doctype html><script type="module" src="/client.js"></script>');
  });
  await new Promise<void>((resolve) => page.listen(0, "127.0.0.1", resolve));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  page?.close();
});

describe.skipIf(!available)("a browser client (connect-web in Chromium)", () => {
  it("calls the API from another origin over Connect and gRPC-Web with a token, and reads ErrorInfo reasons", async () => {
    const tab = await browser.newPage();
    const address = page.address() as { port: number };
    await tab.goto(`http://127.0.0.1:${address.port}/`);
    type Page = { runChecks?: (baseUrl: string, token: string) => Promise<unknown> };
    await tab.waitForFunction(() => typeof (globalThis as Page).runChecks === "function");
    const results = await tab.evaluate(
      ([baseUrl, t]) => (globalThis as Page).runChecks!(baseUrl!, t!),
      [`http://127.0.0.1:${ctx!.app.httpPort}`, token],
    );
    for (const protocol of ["connect", "grpcWeb"] as const) {
      expect((results as Record<string, unknown>)[protocol], protocol).toMatchObject({
        email: expect.stringMatching(/^web_.*@example\.com$/),
        missing: { code: "NotFound", reason: "USER_NOT_FOUND" },
        noToken: { code: "Unauthenticated", reason: "UNAUTHENTICATED" },
      });
    }
  }, 60_000);
});
