import type * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { describe, expect, it } from "vitest";
import { addHealthService, writtenFor } from "../../internal/server/seams/grpc_health_check.js";
import { installedVersion, within } from "../helpers/seams.js";

// Pins what internal/server/seams/grpc_health_check.ts relies on in
// grpc-health-check: an upgrade that changes it fails here first.

describe("the grpc-health-check seam (seams/grpc_health_check.ts)", () => {
  it("was written for the installed grpc-health-check", () => {
    const version = installedVersion("grpc-health-check");
    expect(within(version, writtenFor), `grpc-health-check ${version}: re-read the seam`).toBe(
      true,
    );
  });

  it("When the service is added, Then addToServer calls addService once, with Check and Watch, and nothing else", () => {
    const added: [grpc.ServiceDefinition, grpc.UntypedServiceImplementation][] = [];
    // A stand-in on which any other use of the server would throw.
    addHealthService(new HealthImplementation({ "": "SERVING" }), (definition, impl) =>
      added.push([definition, impl]),
    );
    expect(added).toHaveLength(1);
    const [definition, impl] = added[0]!;
    expect(Object.values(definition).map((m) => m.path)).toEqual(
      expect.arrayContaining(["/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"]),
    );
    expect(typeof impl.check).toBe("function");
    expect(typeof impl.watch).toBe("function");
  });
});
