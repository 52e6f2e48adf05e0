import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import { KmsService, ReencryptionState } from "../../api/kms/v1/kms_pb.js";
import { UserService } from "../../api/user/v1/user_pb.js";
import type { App } from "../../cmd/server/wire.js";
import { useTestApps } from "../helpers/app.js";

// The alert rules and the dashboard against the real thing: promtool runs
// the rules' unit tests, and a real Prometheus (Debian's, as CI installs
// it) scrapes a running server every second, loads the rules, and answers
// every dashboard query and every rule expression. Elsewhere the tests are
// skipped without it.
const PROMETHEUS = "/usr/bin/prometheus";
const PROMTOOL = "/usr/bin/promtool";
const available = existsSync(PROMETHEUS) && existsSync(PROMTOOL);
if (!available && process.env.CI)
  throw new Error(`${PROMETHEUS} and ${PROMTOOL} are required under CI`);

const RULES = resolve("deploy/prometheus/alerts.yaml");
const RULES_TEST = resolve("deploy/prometheus/alerts_test.yaml");
const DASHBOARD = resolve("deploy/grafana/dashboard.json");
// Scrapes every second: a series shows within a few; bounded polling, never a fixed wait.
const bounded = { timeout: 30_000, interval: 250 };

describe.skipIf(!available)("promtool", () => {
  it("passes the alert rules' unit tests", async () => {
    const run = await promisify(execFile)(PROMTOOL, ["test", "rules", RULES_TEST]);
    expect(run.stdout).toContain("SUCCESS");
  });
});

interface Rule {
  alert: string;
  expr: string;
}
const rules: Rule[] = (
  parse(readFileSync(RULES, "utf8")) as { groups: { rules: Rule[] }[] }
).groups.flatMap((g) => g.rules);

interface Panel {
  title: string;
  type: string;
  targets?: { expr: string }[];
}
const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { panels: Panel[] };
const panelQueries = dashboard.panels.flatMap((p) =>
  (p.targets ?? []).map((t) => ({ panel: p.title, expr: dashboardQuery(t.expr) })),
);

/** A panel's query as Grafana sends it for job "kratos", every instance. */
function dashboardQuery(expr: string): string {
  const q = expr
    .replaceAll("$__rate_interval", "1m")
    .replaceAll("$job", "kratos")
    .replaceAll("$instance", ".*");
  if (q.includes("$")) throw new Error(`a variable the test does not know in ${expr}`);
  return q;
}

// PromQL words that are not metric names (functions are told by their parenthesis).
const KEYWORDS = new Set(["and", "or", "unless", "offset", "bool"]);

/**
 * The series selectors an expression reads (a metric name and its matchers,
 * as written): what is left of it without strings outside matchers, label
 * lists, ranges, numbers, functions and operators.
 */
function selectors(expr: string): string[] {
  const found = new Set<string>();
  const bare = expr
    .replace(/\b(?:without|by|ignoring|on|group_left|group_right)\s*\([^)]*\)/g, "")
    .replace(/\[[^\]]*\]/g, "");
  for (const m of bare.matchAll(
    /(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})?(\s*\()?/g,
  )) {
    if (!m[3] && !KEYWORDS.has(m[1]!)) found.add(m[1]! + (m[2]?.trim() ?? ""));
  }
  return [...found];
}

// Selectors with a series only while something fails (the server-side error
// codes): for them the metric alone must have one.
const ONLY_WHILE_FAILING = [/\{code=~"UNKNOWN\|INTERNAL\|/];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe.skipIf(!available)("a real Prometheus scraping the server", () => {
  const ctx = useTestApps();
  let app: App;
  let prometheus: ChildProcess;
  let stderr = "";
  let dir: string;
  let api: string;

  /** An instant query: its status and series (an error names the expression). */
  async function query(
    expr: string,
  ): Promise<{ status: string; error?: string; result: unknown[] }> {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data?: { result: unknown[] };
    };
    return { status: body.status, error: body.error, result: body.data?.result ?? [] };
  }

  beforeAll(async () => {
    app = await ctx.start({ auth: { enabled: false } });
    // Calls, so that the RPC histograms, a refusal and a finished KMS job have series.
    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${app.grpcPort}` });
    const users = createClient(UserService, transport);
    const kms = createClient(KmsService, transport);
    await users.createUser({
      username: "watched",
      password: "passw0rd-long",
      email: "w@example.com",
    });
    await users
      .verifyPassword({ login: "watched", password: "not-this-one" })
      .catch(() => undefined);
    await kms.rotateDataKey({ reason: "prometheus test" });
    await kms.startReencryption({});
    await vi.waitFor(async () => {
      expect((await kms.getReencryptionStatus({})).status!.state).toBe(ReencryptionState.FINISHED);
    }, bounded);

    dir = mkdtempSync(join(tmpdir(), "prometheus-"));
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    writeFileSync(
      join(dir, "prometheus.yml"),
      JSON.stringify({
        global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
        rule_files: [RULES],
        scrape_configs: [
          { job_name: "kratos", static_configs: [{ targets: [`127.0.0.1:${app.httpPort}`] }] },
        ],
      }),
    );
    prometheus = spawn(
      PROMETHEUS,
      [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    prometheus.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    // Scraped at least once, the target up.
    await vi.waitFor(async () => {
      expect(prometheus.exitCode, `prometheus exited: ${stderr}`).toBeNull();
      const res = await fetch(`${api}/api/v1/targets`).catch(() => undefined);
      expect(res?.status).toBe(200);
      const body = (await res!.json()) as {
        data: { activeTargets: { health: string; lastError: string }[] };
      };
      expect(body.data.activeTargets.map((t) => [t.health, t.lastError])).toEqual([["up", ""]]);
    }, bounded);
  });

  afterAll(() => {
    prometheus?.kill("SIGTERM");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("loads every alert rule and evaluates each without error", async () => {
    expect(rules.length).toBeGreaterThan(0);
    await vi.waitFor(async () => {
      const body = (await (await fetch(`${api}/api/v1/rules`)).json()) as {
        data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
      };
      const loaded = body.data.groups.flatMap((g) => g.rules);
      expect(loaded.map((r) => r.name).sort()).toEqual(rules.map((r) => r.alert).sort());
      expect(loaded.filter((r) => r.health !== "ok")).toEqual([]);
    }, bounded);
  });

  // Every rule's expression is a firing condition, empty while all is well:
  // so each must parse, and each series selector in it must match a series
  // (else it could never fire: a misspelt name or label value, a series the
  // server does not serve); for a selector only failures fill
  // (ONLY_WHILE_FAILING), its metric name must.
  it.each(rules.map((r) => [r.alert, r] as const))(
    "alert %s parses, and every selector it reads matches a series",
    async (_, rule) => {
      const whole = await query(rule.expr);
      expect(whole.error).toBeUndefined();
      expect(whole.status).toBe("success");
      const read = selectors(rule.expr);
      expect(read.length).toBeGreaterThan(0);
      for (const selector of read) {
        const checked = ONLY_WHILE_FAILING.some((r) => r.test(selector))
          ? selector.replace(/\{.*$/, "")
          : selector;
        await vi.waitFor(async () => {
          expect((await query(checked)).result.length, checked).toBeGreaterThan(0);
        }, bounded);
      }
    },
  );

  // A panel's queries describe the service as it is: each returns a series.
  it.each(panelQueries.map((q) => [q.panel, q.expr] as const))(
    "panel %s: %s returns a series",
    async (_, expr) => {
      await vi.waitFor(async () => {
        const answer = await query(expr);
        expect(answer.error).toBeUndefined();
        expect(answer.status).toBe("success");
        expect(answer.result.length).toBeGreaterThan(0);
      }, bounded);
    },
  );

  it("reads the selectors of an expression as written", () => {
    expect(
      selectors(
        'max without (worker) (time() - migration_last_success_timestamp_seconds{a="b}", c=~"x|y"}[5m]) > 3 and on (x) up',
      ),
    ).toEqual(['migration_last_success_timestamp_seconds{a="b}", c=~"x|y"}', "up"]);
  });
});
