import { create, toBinary } from "@bufbuild/protobuf";
import {
  GetUserRequestSchema,
  LookupUserRequestSchema,
  UserService,
} from "../api/user/v1/user_pb.js";
import { openKms } from "../cmd/server/kms.js";
import { UserUsecase } from "../internal/biz/user_usecase.js";
import { background } from "../internal/biz/context.js";
import { openData } from "../internal/data/data.js";
import { newUserRepo } from "../internal/data/user_repo.js";
import { fairQueue } from "../internal/pkg/limit/fair_queue.js";
import { createLogger } from "../internal/pkg/log/logger.js";
import { alternate, answeredFromMetrics } from "./lib/compare.js";
import { startReference } from "./lib/reference.js";
import { startBenchServer } from "./lib/server.js";

const USERS = 200;

/**
 * GetUser and LookupUser (by email) over the gRPC port (authentication on, a
 * JWT on every call), alternating rounds against a bare grpc-js server in a
 * process of its own answering the same request shape with the product's
 * own single indexed query (its repository; bare_users.ts) and no
 * decryption; and CreateUser throughput in process (scrypt dominates it by
 * design).
 */
export async function usersBench(url: string, seconds: number, rounds: number) {
  const ours = await startBenchServer(url, Buffer.alloc(32, 6));
  const conf = ours.conf;
  try {
    // Seed users in process, measuring CreateUser throughput at concurrency 32.
    const log = createLogger({ level: "silent", format: "json" });
    const data = await openData(conf.data!.database!, log);
    const kms = await openKms(conf.kms!, { data, log });
    // The service's hashing slots, with room for the one caller's 32 calls
    // (the service refuses a caller past limits.password_hashes_per_caller).
    const limits = conf.limits!;
    const hashing = fairQueue({
      concurrency: limits.passwordHashConcurrency,
      capacity: limits.passwordHashQueue,
      perKey: 32,
    });
    const users = new UserUsecase(newUserRepo(data.pool), kms.cipher, { hashing });
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < USERS) {
          const i = next++;
          await users.create(
            {
              username: `bench_${i}`,
              password: "bench-passw0rd",
              email: `bench${i}@example.com`,
              phone: `+1555${String(1000000 + i)}`,
              name: `Bench User ${i}`,
            },
            background,
          );
        }
      }),
    );
    const createPerSecond = USERS / ((performance.now() - started) / 1000);
    await kms.close();
    await data.close();

    const get = toBinary(GetUserRequestSchema, create(GetUserRequestSchema, { id: 100n }));
    const lookup = toBinary(
      LookupUserRequestSchema,
      create(LookupUserRequestSchema, { key: { case: "email", value: "bench100@example.com" } }),
    );
    const bare = await startReference("users", url);
    try {
      const compare = (method: string, request: Uint8Array) =>
        alternate({
          path: `/${UserService.typeName}/${method}`,
          request,
          rounds,
          seconds,
          contenders: [
            { ...bare, name: "bare", token: ours.token },
            {
              name: "ours",
              port: ours.grpcPort,
              pid: ours.pid,
              token: ours.token,
              answered: () =>
                answeredFromMetrics(ours.httpPort, UserService.typeName, method, ours.token),
            },
          ],
        });
      return {
        createPerSecond,
        get: await compare("GetUser", get),
        lookup: await compare("LookupUser", lookup),
      };
    } finally {
      await bare.stop();
    }
  } finally {
    await ours.stop();
  }
}
