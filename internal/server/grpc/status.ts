import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema, anyPack } from "@bufbuild/protobuf/wkt";
import type { ConnectError } from "@connectrpc/connect";
import { StatusSchema } from "../../../third_party/google/rpc/status_pb.js";

/** The status fields of a call's trailers (or of a trailers-only answer). */
export type StatusFields = Record<"grpc-status", string> & Partial<Record<string, string>>;

export const OK_STATUS: Readonly<StatusFields> = { "grpc-status": "0" };

/**
 * A ConnectError as gRPC trailers: its code, its message (percent-encoded as
 * the protocol asks) and every detail in grpc-status-details-bin, a
 * google.rpc.Status, so that clients decode ErrorInfo and RetryInfo.
 */
export function errorStatus(err: ConnectError): StatusFields {
  const details = err.details.map((d) =>
    "desc" in d
      ? anyPack(d.desc, create(d.desc, d.value))
      : create(AnySchema, { typeUrl: `type.googleapis.com/${d.type}`, value: d.value }),
  );
  const status = create(StatusSchema, { code: err.code, message: err.rawMessage, details });
  return {
    "grpc-status": String(err.code),
    "grpc-message": percentEncode(err.rawMessage),
    // Unpadded, as the protocol recommends; clients accept both.
    "grpc-status-details-bin": Buffer.from(toBinary(StatusSchema, status))
      .toString("base64")
      .replace(/=+$/, ""),
  };
}

/** The protocol's grpc-message encoding: UTF-8, bytes outside 0x20–0x7E and "%" as %XX. */
export function percentEncode(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
