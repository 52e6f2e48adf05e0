import { constants, type Http2Server, type Http2Session } from "node:http2";
import { byteBudget, type ByteBudget } from "../../pkg/limit/queue.js";

export interface SessionPolicy {
  /** A connection without calls is closed (GOAWAY) after this long. */
  idleMs: number;
  /** The server pings a connection this often (0: never)... */
  keepaliveTimeMs: number;
  /** ...and closes it when the answer takes longer than this. */
  keepaliveTimeoutMs: number;
  /**
   * A client ping sooner than this after the last ping or call is a strike;
   * past MAX_PING_STRIKES the connection is closed with GOAWAY
   * ENHANCE_YOUR_CALM "too_many_pings" (gRPC clients then ping less).
   */
  minPingIntervalMs: number;
  /**
   * Bytes the connections of one address may have announced in messages'
   * prefixes and not yet sent (see ReaderOptions.announced).
   */
  announcedPerPeerBytes: number;
}

/** A call's connection, as the call sees it. */
export interface Connection {
  /** The client's address. */
  peer: string | undefined;
  /** What its address may announce and not yet send, shared by its connections. */
  announced: ByteBudget;
  /** The call is over. */
  done(): void;
}

const MAX_PING_STRIKES = 2;

interface Session {
  /** What each of its calls is handed: one per connection, not one per call. */
  connection: Connection;
  /** Calls open on it. */
  open: number;
  /** Set while no call is open; when it rings early (a call came and went), it is set again for the rest. */
  idle: NodeJS.Timeout | undefined;
  /** When its last call ended (performance.now()): pings do not keep a connection. */
  lastCallEnded: number;
  /** When its last call or ping was (Date.now()), for the ping policy. */
  lastActive: number;
  strikes: number;
}

/**
 * The connections of the port, each with its peer address, its idle rule
 * (no call for idleMs: closed, whatever the socket does), the server's
 * keepalive pings and the policy on the client's.
 */
export function trackSessions(server: Http2Server, policy: SessionPolicy) {
  const sessions = new Map<Http2Session, Session>();
  // One budget per address while it has connections.
  const peers = new Map<string, { announced: ByteBudget; sessions: number }>();
  const peerBudget = (key: string | undefined) => {
    if (key === undefined) return byteBudget(policy.announcedPerPeerBytes, 1024);
    let p = peers.get(key);
    if (!p) {
      p = { announced: byteBudget(policy.announcedPerPeerBytes, 1024), sessions: 0 };
      peers.set(key, p);
    }
    p.sessions++;
    return p.announced;
  };
  const leave = (key: string | undefined) => {
    const p = key === undefined ? undefined : peers.get(key);
    if (p && --p.sessions === 0) peers.delete(key!);
  };
  // One timer per idle spell, not one per call: a call that begins leaves
  // it set, and it closes the connection only when no call is open and none
  // ended within idleMs.
  const armIdle = (session: Http2Session, s: Session, ms: number) => {
    s.idle = setTimeout(() => {
      s.idle = undefined;
      if (s.open > 0 || session.closed) return;
      const left = s.lastCallEnded + policy.idleMs - performance.now();
      if (left > 0) armIdle(session, s, left);
      else session.close();
    }, ms);
  };
  server.on("session", (session) => {
    const peer = session.socket?.remoteAddress;
    const key = peer === undefined ? undefined : addressBlock(peer);
    const s: Session = {
      connection: {
        peer,
        announced: peerBudget(key),
        done: () => {
          s.lastCallEnded = performance.now();
          s.lastActive = Date.now();
          s.strikes = 0;
          if (--s.open === 0 && s.idle === undefined && !session.closed) {
            armIdle(session, s, policy.idleMs);
          }
        },
      },
      open: 0,
      idle: undefined,
      lastCallEnded: performance.now(),
      lastActive: Date.now(),
      strikes: 0,
    };
    sessions.set(session, s);
    session.on("error", () => undefined);
    armIdle(session, s, policy.idleMs);
    const keepalive =
      policy.keepaliveTimeMs > 0
        ? setInterval(() => ping(session, policy.keepaliveTimeoutMs), policy.keepaliveTimeMs)
        : undefined;
    session.on("ping", () => {
      if (session.closed || session.destroyed) return;
      const now = Date.now();
      // A tenth of grace: a client pinging at the interval, with jitter, is not early.
      const early = now - s.lastActive < policy.minPingIntervalMs * 0.9;
      if (early && ++s.strikes > MAX_PING_STRIKES) {
        // The code and text gRPC clients read as "ping less"; calls in flight finish.
        session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, Buffer.from("too_many_pings"));
        session.close();
        return;
      }
      s.lastActive = now;
    });
    session.once("close", () => {
      clearTimeout(s.idle);
      clearInterval(keepalive);
      sessions.delete(session);
      leave(key);
    });
  });
  return {
    /** A call began on `session`: its connection, with `done` to call when it ends. */
    began(session: Http2Session): Connection {
      const s = sessions.get(session);
      if (!s) {
        const announced = byteBudget(policy.announcedPerPeerBytes, 1024);
        return { peer: undefined, announced, done: () => undefined };
      }
      s.open++;
      s.strikes = 0;
      s.lastActive = Date.now();
      return s.connection;
    },
    /**
     * GOAWAY on every connection: calls in flight finish, none begin. Twice,
     * as HTTP/2 advises: first naming no last call, so that calls the client
     * sent meanwhile are still taken; then, once a ping has come back (or
     * after a second), the real last call.
     */
    closeAll() {
      for (const session of sessions.keys()) {
        if (session.closed || session.destroyed) continue;
        session.goaway(constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
        const close = () => {
          clearTimeout(timer);
          if (!session.closed && !session.destroyed) session.close();
        };
        const timer = setTimeout(close, 1000);
        // After the GOAWAY has gone out: node sends a PING ahead of queued
        // frames, and its answer must come after the client saw the GOAWAY.
        setImmediate(() => {
          if (session.closed || session.destroyed || !session.ping(close)) close();
        });
      }
    },
  };
}

function ping(session: Http2Session, timeoutMs: number): void {
  if (session.closed || session.destroyed) return;
  const timer = setTimeout(() => session.destroy(), timeoutMs);
  const sent = session.ping(() => clearTimeout(timer));
  if (!sent) clearTimeout(timer);
}

/**
 * What one client is taken to hold: an IPv4 address, or an IPv6 address's
 * /64 (a host is given a whole /64, and picks addresses in it at will).
 */
export function addressBlock(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(":")) return address;
  const [head = "", tail] = address.toLowerCase().split("%", 1)[0]!.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(":")}::/64`;
}
