import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import {
  GetUserRequestSchema,
  GetUserResponseSchema,
  LookupUserRequestSchema,
  LookupUserResponseSchema,
  UserService,
} from "../../api/user/v1/user_pb.js";
import type { StoredUser } from "../../internal/biz/user.js";
import { newUserRepo } from "../../internal/data/user_repo.js";
import { asBuffer, type BareHandler } from "./bare.js";

/**
 * The users limit: raw handlers for GetUser and LookupUser that run the
 * product's own repository query (internal/data/user_repo.ts: the same SQL,
 * one indexed read) and answer the same response shape, without the
 * service's middleware, validation, blind-index HMAC or decryption.
 */
export async function bareUserHandlers(url: string): Promise<Record<string, BareHandler>> {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  pool.on("error", () => undefined);
  const repo = newUserRepo(pool);
  // LookupUser's blind index (of the user users.ts looks up), computed once
  // here: the bare server does no HMAC.
  const hashes = (await repo.byUsername("bench_100"))!.fields.email!.hashes;
  // The same response shape; the encrypted bytes stand in for the values: no decryption.
  const user = (u: StoredUser) => ({
    id: BigInt(u.id),
    username: u.username,
    email: u.fields.email?.ciphertext.toString("base64") ?? "",
    createdAt: timestampFromDate(u.createdAt),
    updatedAt: timestampFromDate(u.updatedAt),
  });
  return {
    [`/${UserService.typeName}/GetUser`]: (call, cb) => {
      const req = fromBinary(GetUserRequestSchema, call.request);
      repo.byId(Number(req.id)).then(
        (found) =>
          cb(
            null,
            asBuffer(
              toBinary(
                GetUserResponseSchema,
                create(GetUserResponseSchema, { user: user(found!) }),
              ),
            ),
          ),
        (err: Error) => cb(err, null),
      );
    },
    [`/${UserService.typeName}/LookupUser`]: (call, cb) => {
      fromBinary(LookupUserRequestSchema, call.request);
      repo.byHash("email", hashes).then(
        ({ found }) =>
          cb(
            null,
            asBuffer(
              toBinary(
                LookupUserResponseSchema,
                create(LookupUserResponseSchema, { user: user(found!) }),
              ),
            ),
          ),
        (err: Error) => cb(err, null),
      );
    },
  };
}
