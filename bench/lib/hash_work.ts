import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { HashFieldRequestSchema, HashFieldResponseSchema } from "../../api/kms/v1/kms_pb.js";
import { blindIndex, fieldSubkey } from "../../internal/pkg/kms/blindindex.js";

/**
 * The work of one HashField call past the service's chain, for the
 * references that do the same work on another transport: decode the
 * request with the generated schema, take the field's subkey (derived once
 * per field and kept, as the service's index key holder does), normalise,
 * HMAC-SHA256, hex (the product's own blindIndex), encode the response.
 */
export function hashFieldWork(indexKey: Buffer): (request: Uint8Array) => Uint8Array {
  const subkeys = new Map<string, Buffer>();
  return (bytes) => {
    const { fieldName, value } = fromBinary(HashFieldRequestSchema, bytes);
    let subkey = subkeys.get(fieldName);
    if (!subkey) {
      subkey = fieldSubkey(indexKey, fieldName, "service");
      subkeys.set(fieldName, subkey);
    }
    const hash = blindIndex(subkey, fieldName, value);
    return toBinary(HashFieldResponseSchema, create(HashFieldResponseSchema, { hash }));
  };
}
