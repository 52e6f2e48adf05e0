import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import {
  GetUserRequestSchema,
  GetUserResponseSchema,
  LookupUserRequestSchema,
  LookupUserResponseSchema,
  UserService,
} from "../api/user/v1/user_pb.js";
import { openKms } from "../cmd/server/kms.js";
import type { StoredUser } from "../internal/biz/user.js";
import { UserUsecase } from "../internal/biz/user_usecase.js";
import { background } from "../internal/biz/context.js";
import { openData } from "../internal/data/data.js";
import { newUserRepo } from "../internal/data/user_repo.js";
import { createLogger } from "../internal/pkg/log/logger.js";
import { startBareServer } from "./lib/bare.js";
import { alternate, answeredFromMetrics } from "./lib/compare.js";
import { startBenchServer } from "./lib/server.js";

const USERS = 200;

/**
 * GetUser and LookupUser (by email) over the gRPC port (authentication on),
 * alternating rounds against a bare grpc-js server answering the same
 * request shape with the product's own single indexed query (its
 * repository) and no decryption; and CreateUser throughput in process
 * (scrypt dominates it by design).
 */
export async function usersBench(url: string, seconds: number, rounds: number) {
  const ours = await startBenchServer(url, Buffer.alloc(32, 6));
  const conf = ours.conf;
  try {
    // Seed users in process, measuring CreateUser throughput at concurrency 32.
    const log = createLogger({ level: "silent", format: "json" });
    const data = await openData(conf.data!.database!, log);
    const kms = await openKms(conf.kms!, { data, log });
    const users = new UserUsecase(newUserRepo(data.pool), kms.cipher);
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
    const bare = await bareUsers(url);
    try {
      const compare = (method: string, request: Uint8Array, limit: BareServer) =>
        alternate({
          path: `/${UserService.typeName}/${method}`,
          request,
          rounds,
          seconds,
          contenders: [
            { name: "bare", port: limit.port, answered: limit.answered },
            {
              name: "ours",
              port: ours.grpcPort,
              token: ours.token,
              answered: () =>
                answeredFromMetrics(ours.httpPort, UserService.typeName, method, ours.token),
            },
          ],
        });
      return {
        createPerSecond,
        get: await compare("GetUser", get, bare.get),
        lookup: await compare("LookupUser", lookup, bare.lookup),
      };
    } finally {
      await bare.stop();
    }
  } finally {
    await ours.stop();
  }
}

type BareServer = Awaited<ReturnType<typeof startBareServer>>;

/**
 * The limit: a bare grpc-js server per method that runs the product's own
 * repository query (internal/data/user_repo.ts: the same SQL, one indexed
 * read) and answers the same response shape, without the service's
 * middleware, validation, blind-index HMAC or decryption.
 */
async function bareUsers(url: string) {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  pool.on("error", () => undefined);
  const repo = newUserRepo(pool);
  // LookupUser's blind index, computed once here: the bare server does no HMAC.
  const hashes = (await repo.byUsername("bench_100"))!.fields.email!.hashes;
  // The same response shape; the encrypted bytes stand in for the values: no decryption.
  const user = (u: StoredUser) => ({
    id: BigInt(u.id),
    username: u.username,
    email: u.fields.email?.ciphertext.toString("base64") ?? "",
    createdAt: timestampFromDate(u.createdAt),
    updatedAt: timestampFromDate(u.updatedAt),
  });
  const getServer = await startBareServer(`/${UserService.typeName}/GetUser`, (call, cb) => {
    const req = fromBinary(GetUserRequestSchema, call.request);
    repo.byId(Number(req.id)).then(
      (found) =>
        cb(
          null,
          Buffer.from(
            toBinary(GetUserResponseSchema, create(GetUserResponseSchema, { user: user(found!) })),
          ),
        ),
      (err: Error) => cb(err, null),
    );
  });
  const lookupServer = await startBareServer(`/${UserService.typeName}/LookupUser`, (call, cb) => {
    fromBinary(LookupUserRequestSchema, call.request);
    repo.byHash("email", hashes).then(
      ({ found }) =>
        cb(
          null,
          Buffer.from(
            toBinary(
              LookupUserResponseSchema,
              create(LookupUserResponseSchema, { user: user(found!) }),
            ),
          ),
        ),
      (err: Error) => cb(err, null),
    );
  });
  return {
    get: getServer,
    lookup: lookupServer,
    stop: async () => {
      getServer.stop();
      lookupServer.stop();
      await pool.end();
    },
  };
}
