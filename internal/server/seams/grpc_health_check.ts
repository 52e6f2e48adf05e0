import type * as grpc from "@grpc/grpc-js";
import type { HealthImplementation } from "grpc-health-check";

// grpc-health-check registers itself on a whole grpc.Server; we hand it a
// stand-in that has only addService, so that its Watch handler can be
// wrapped (streams ended at shutdown). Relied on, and pinned by
// test/unit/seam_grpc_health_check.test.ts: addToServer calls addService
// once, and nothing else on the server.

/** The grpc-health-check versions this seam was written for: [from, below), major.minor. */
export const writtenFor = { from: [2, 1], below: [2, 2] } as const;

/** Registers grpc.health.v1 through `addService`, which may change the implementation. */
export function addHealthService(
  health: HealthImplementation,
  addService: (definition: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) => void,
): void {
  health.addToServer({ addService } as grpc.Server);
}
