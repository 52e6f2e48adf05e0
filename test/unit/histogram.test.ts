import { create } from "@bufbuild/protobuf";
import { Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { GetUserRequestSchema, UserService } from "../../api/user/v1/user_pb.js";
import { FastHistogram } from "../../internal/server/histogram.js";
import { createMetrics } from "../../internal/server/metrics.js";
import { metricsObserver } from "../../internal/server/middleware/metrics.js";
import { createCall, type Call } from "../../internal/transport/call.js";

const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const labelNames = ["service", "method", "transport", "code"] as const;

function pair(defaultLabels?: Record<string, string>) {
  const theirs = new Registry();
  const ours = new Registry();
  if (defaultLabels) {
    theirs.setDefaultLabels(defaultLabels);
    ours.setDefaultLabels(defaultLabels);
  }
  const reference = new Histogram({
    name: "rpc_server_duration_seconds",
    help: "Duration.",
    labelNames,
    buckets,
    registers: [theirs],
  });
  const fast = new FastHistogram("rpc_server_duration_seconds", "Duration.", labelNames, buckets);
  ours.registerMetric(fast.asMetric());
  return { theirs, ours, reference, fast };
}

// Values on and around every bound, below the first and above the last.
const values = [
  0,
  ...buckets.flatMap((b) => [b * 0.999, b, b * 1.001]),
  11,
  1e6,
  0.0001234,
  0.3333333,
];

describe("FastHistogram", () => {
  it.each([[undefined], [{ worker: "3" }]])(
    "When it counts what prom-client's Histogram counts (default labels %j), Then a scrape reads the same, text and JSON",
    async (defaultLabels) => {
      const { theirs, ours, reference, fast } = pair(defaultLabels);
      const sets = [
        { service: "user.v1.UserService", method: "GetUser", transport: "grpc", code: "OK" },
        { service: "user.v1.UserService", method: "GetUser", transport: "rest", code: "OK" },
        {
          service: "kms.v1.KmsService",
          method: "HashField",
          transport: "connect",
          code: 'x"y\\z\n',
        },
      ];
      const series = sets.map((l) => fast.labels(l));
      for (const [i, v] of values.entries()) {
        const at = (i * 7) % sets.length;
        reference.observe(sets[at]!, v);
        series[at]!.observe(v);
      }
      // A series looked up but never observed is not shown, as in prom-client.
      fast.labels({ service: "s", method: "m", transport: "grpc", code: "OK" });
      expect(await ours.metrics()).toBe(await theirs.metrics());
      expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
      theirs.resetMetrics();
      ours.resetMetrics();
      expect(await ours.metrics()).toBe(await theirs.metrics());
      reference.observe(sets[1]!, 0.02);
      series[1]!.observe(0.02);
      expect(await ours.metrics()).toBe(await theirs.metrics());
    },
  );

  it("When a value is not a number, Then it is refused as prom-client refuses it", () => {
    const { fast } = pair();
    const s = fast.labels({ service: "s", method: "m", transport: "grpc", code: "OK" });
    expect(() => s.observe(Number.NaN)).toThrow(TypeError);
  });
});

describe("metricsObserver", () => {
  const call = (transport: Call["transport"]) =>
    createCall({
      service: UserService,
      method: UserService.method.getUser,
      request: create(GetUserRequestSchema),
      deadline: undefined,
      transport,
      requestHeader: new Headers(),
    });

  it("When the same method is called over each transport, Then each is counted under its own transport", async () => {
    const { registry, rpc } = createMetrics();
    const observe = metricsObserver(rpc);
    for (const transport of ["connect", "rest", "rest", "grpc"] as const)
      observe(call(transport), "OK", 1);
    const text = await registry.metrics();
    const count = (transport: string) =>
      new RegExp(
        `rpc_server_duration_seconds_count\\{[^}]*transport="${transport}"[^}]*\\} (\\d+)`,
      ).exec(text)?.[1];
    expect([count("grpc"), count("connect"), count("rest")]).toEqual(["1", "1", "2"]);
  });
});
