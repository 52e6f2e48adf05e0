import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema, anyPack } from "@bufbuild/protobuf/wkt";
import type { ConnectError } from "@connectrpc/connect";
import { Metadata, type StatusObject, type status as GrpcStatus } from "@grpc/grpc-js";
import { StatusSchema } from "../../third_party/google/rpc/status_pb.js";

/** The grpc-js status for a ConnectError: code, message and rich details. */
export function toGrpcStatus(err: ConnectError): Partial<StatusObject> {
  const details = err.details.map((d) =>
    "desc" in d
      ? anyPack(d.desc, create(d.desc, d.value))
      : create(AnySchema, { typeUrl: `type.googleapis.com/${d.type}`, value: d.value }),
  );
  const metadata = new Metadata();
  const status = create(StatusSchema, { code: err.code, message: err.rawMessage, details });
  metadata.set("grpc-status-details-bin", Buffer.from(toBinary(StatusSchema, status)));
  return { code: err.code as number as GrpcStatus, details: err.rawMessage, metadata };
}
