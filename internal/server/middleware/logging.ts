import type { Logger } from "../../pkg/log/logger.js";
import { rpcName, type Call } from "../../transport/call.js";
import type { Observer } from "../../transport/middleware.js";

/**
 * One structured line per call: method, caller, transport, code, duration.
 * Never payloads. None at all (undefined) when the level is above info. Of
 * the calls answered OK, only the fraction `sample` (0..1, log.request_sample)
 * picked by `random` is written; every other code always is. The line is
 * made here, and written by the logger's destination later, with the lines
 * that arrive meanwhile (internal/pkg/log).
 */
export function requestLog(
  root: Logger,
  sample = 1,
  random: () => number = Math.random,
): Observer | undefined {
  if (!root.isLevelEnabled("info")) return undefined;
  // The line's fields are fixed and carry no secret or personal data (the
  // caller is a token's configured name): the redaction every other line
  // goes through is skipped here, where it cost more than the line itself.
  const log = root.child({}, { redact: [] });
  // Method and transport are serialized once per pair (pino child bindings),
  // not on every line.
  const children = new WeakMap<Call["method"], Partial<Record<Call["transport"], Logger>>>();
  const child = (call: Call): Logger => {
    let byMethod = children.get(call.method);
    if (!byMethod) {
      byMethod = {};
      children.set(call.method, byMethod);
    }
    return (byMethod[call.transport] ??= log.child({
      rpc: rpcName(call),
      transport: call.transport,
    }));
  };
  return (call, code, ms) => {
    if (sample < 1 && code === "OK" && !(random() < sample)) return;
    child(call).info({ caller: call.caller?.name, code, ms: Math.round(ms * 1000) / 1000 }, "rpc");
  };
}
