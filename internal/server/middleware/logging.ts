import { fixedInfoLines, type Logger } from "../../pkg/log/logger.js";
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
  // The line's keys are fixed and none is one the redaction of every other
  // line looks for, so it is skipped here; the line is written in one
  // template (fixedInfoLines), its method and transport rendered once per
  // pair.
  const writers = new WeakMap<Call["method"], Partial<Record<Call["transport"], Write>>>();
  const writer = (call: Call): Write => {
    let byMethod = writers.get(call.method);
    if (!byMethod) {
      byMethod = {};
      writers.set(call.method, byMethod);
    }
    return (byMethod[call.transport] ??= fixedInfoLines(
      root,
      { rpc: rpcName(call), transport: call.transport },
      "rpc",
    ));
  };
  return (call, code, ms) => {
    if (sample < 1 && code === "OK" && !(random() < sample)) return;
    const name = call.caller?.name;
    // Codes are the fixed names of codeName: nothing in them to escape.
    writer(call)(
      `${name === undefined ? "" : `,"caller":${JSON.stringify(name)}`},"code":"${code}","ms":${Math.round(ms * 1000) / 1000}`,
    );
  };
}

type Write = (members: string) => void;
