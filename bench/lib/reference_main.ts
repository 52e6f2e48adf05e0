import { create, toBinary } from "@bufbuild/protobuf";
import { HashFieldResponseSchema, KmsService } from "../../api/kms/v1/kms_pb.js";
import { asBuffer, startBareServer } from "./bare.js";
import { bareUserHandlers } from "./bare_users.js";
import type { Answered } from "./compare.js";
import { startH2Unary } from "./h2_unary.js";
import { hashFieldWork } from "./hash_work.js";
import type { ReferenceKind } from "./reference.js";

// A reference server in a process of its own (started by reference.ts):
// it says its port over IPC, answers "answered" with its counts, and
// leaves when the benchmark does (the IPC channel closes).

const kind = process.argv[2] as ReferenceKind;
const hashPath = `/${KmsService.typeName}/${KmsService.method.hashField.name}`;
// A fixed index key: the references' HMAC costs what the service's does.
const indexKey = Buffer.alloc(32, 7);

async function start(): Promise<{ port: number; answered(): Answered }> {
  switch (kind) {
    case "bare": {
      const reply = asBuffer(
        toBinary(
          HashFieldResponseSchema,
          create(HashFieldResponseSchema, { hash: "0".repeat(64) }),
        ),
      );
      return startBareServer({ [hashPath]: (_call, cb) => cb(null, reply) });
    }
    case "grpc-js": {
      const work = hashFieldWork(indexKey);
      return startBareServer({
        [hashPath]: (call, cb) => {
          let reply: Uint8Array;
          try {
            reply = work(call.request);
          } catch (err) {
            cb(err as Error, null);
            return;
          }
          cb(null, asBuffer(reply));
        },
      });
    }
    case "http2":
      return startH2Unary({ [hashPath]: hashFieldWork(indexKey) });
    case "users":
      return startBareServer(await bareUserHandlers(process.env.BENCH_DATABASE_URL!));
    default:
      throw new Error(`reference_main: unknown kind ${String(kind)}`);
  }
}

const server = await start();
process.on("message", (m) => {
  if (m === "answered") process.send!(server.answered());
});
process.on("disconnect", () => process.exit(0));
process.send!({ port: server.port });
