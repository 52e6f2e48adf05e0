import { tokenBuckets } from "../../pkg/limit/queue.js";

/**
 * Failed authentications per peer address: what lets a flood of missing,
 * bad or forged tokens be refused before any of them is looked at.
 */
export interface PeerLimit {
  /** Milliseconds until calls from `peer` are heard again; 0 when they are now. */
  waitMs(peer: string): number;
  /**
   * Counts one failed authentication from `peer`: 0 while within its
   * limit, else the milliseconds it is now refused for (this call too).
   */
  failed(peer: string): number;
}

/**
 * A token bucket per address (see addressKey), spent only by failed
 * authentications: `perMinute` of them, `burst` at once. A failure that
 * finds the bucket empty is refused as over the limit and closes the
 * address until a token is back; until then every call from it is refused,
 * valid token or not, since telling them apart is the work the limit saves. Per instance; none (undefined)
 * when `perMinute` is 0.
 */
export function peerLimit(
  perMinute: number,
  burst: number,
  maxPeers = 100_000,
): PeerLimit | undefined {
  if (perMinute <= 0) return undefined;
  const buckets = tokenBuckets(perMinute / 60, Math.max(1, burst), maxPeers);
  // When each closed address opens again (performance.now() time).
  const closed = new Map<string, number>();
  return {
    waitMs(peer) {
      if (closed.size === 0) return 0;
      const key = addressKey(peer);
      const until = closed.get(key);
      if (until === undefined) return 0;
      const left = until - performance.now();
      if (left > 0) return Math.ceil(left);
      closed.delete(key);
      return 0;
    },
    failed(peer) {
      const key = addressKey(peer);
      const wait = buckets.take(key);
      if (wait === 0) return 0;
      // Bounded as the buckets are: the oldest closure goes first.
      if (closed.size >= maxPeers && !closed.has(key)) closed.delete(closed.keys().next().value!);
      closed.set(key, performance.now() + wait);
      return wait;
    },
  };
}

/**
 * The unit a limit counts: an IPv4 address (also when written IPv4-mapped,
 * `::ffff:a.b.c.d`), or the /64 of an IPv6 address, the least a single
 * host or subscriber is usually given: counting each of its 2^64 addresses
 * apart would be no limit at all.
 */
export function addressKey(address: string): string {
  const plain = address.split("%", 1)[0]!.toLowerCase();
  if (!plain.includes(":")) return plain;
  if (plain.startsWith("::ffff:") && plain.includes(".")) return plain.slice("::ffff:".length);
  const [head = "", tail] = plain.split("::");
  const front = head === "" ? [] : head.split(":");
  let groups = front;
  if (tail !== undefined) {
    // An embedded IPv4 tail (a.b.c.d) stands for two groups.
    const back = tail === "" ? [] : tail.split(":");
    const backGroups = back.length + (tail.includes(".") ? 1 : 0);
    const zeros = Array<string>(Math.max(0, 8 - front.length - backGroups)).fill("0");
    groups = [...front, ...zeros, ...back];
  }
  const prefix = [0, 1, 2, 3].map((i) => (parseInt(groups[i] ?? "0", 16) || 0).toString(16));
  return `${prefix.join(":")}::/64`;
}
