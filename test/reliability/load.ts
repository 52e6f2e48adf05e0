import * as grpc from "@grpc/grpc-js";
import { UserService } from "../../api/user/v1/user_pb.js";
import { grpcClient } from "../helpers/clients.js";

/** One call's outcome: the username it tried, the gRPC code, and when it was sent and answered. */
export interface Outcome {
  username: string;
  code: grpc.status;
  sentAt: number;
  answeredAt: number;
}

/**
 * `workers` loops of CreateUser against a gRPC port until `stop()` (or
 * `maxCalls` in all), each call bounded by `deadlineMs`. Bounded in count and
 * time by construction: every call has a deadline, the loops a cap. One
 * caller: by default no more loops than a caller's share of password hashes
 * (`limits.password_hashes_per_caller`, 4), past which calls are refused.
 */
export function createUserLoad(
  port: number,
  { workers = 4, deadlineMs = 3000, maxCalls = 5000, prefix = "load" } = {},
) {
  const client = grpcClient(UserService, port);
  const outcomes: Outcome[] = [];
  let stopped = false;
  let next = 0;
  const loops = Array.from({ length: workers }, async () => {
    while (!stopped && next < maxCalls) {
      const username = `${prefix}_${next++}`;
      const sentAt = Date.now();
      const code = await client
        .unary(
          UserService.method.createUser,
          { username, password: "passw0rd-long", email: `${username}@example.com` },
          deadlineMs,
        )
        .then(
          () => grpc.status.OK,
          (err: grpc.ServiceError) => err.code,
        );
      outcomes.push({ username, code, sentAt, answeredAt: Date.now() });
      // A refused connection answers at once: do not spin.
      if (code !== grpc.status.OK) await new Promise((r) => setTimeout(r, 20));
    }
  });
  return {
    outcomes,
    async stop(): Promise<Outcome[]> {
      stopped = true;
      await Promise.all(loops);
      client.close();
      return outcomes;
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Codes seen, by name, for assertion messages. */
export function tally(outcomes: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[grpc.status[o.code]] = (counts[grpc.status[o.code]] ?? 0) + 1;
  return counts;
}
