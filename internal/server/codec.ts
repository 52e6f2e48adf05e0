import type { BinaryReadOptions } from "@bufbuild/protobuf";

/**
 * How both ports read request messages. Unknown fields (a newer client's)
 * are skipped, not kept: kept, each one is an object, and a 4 MiB request of
 * nine-byte unknown fields held over 40 MB of heap while it was served.
 */
export const requestReadOptions: Partial<BinaryReadOptions> = { readUnknownFields: false };
