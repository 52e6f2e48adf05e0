/** A length-prefixed message's header: a compressed flag, then the length (big-endian). */
export const PREFIX_BYTES = 5;

/** A response message framed for the wire: one buffer, prefix and body. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, PREFIX_BYTES);
  return out;
}
