import { commitGateKey, withValue, type Call } from "../../transport/call.js";
import type { Middleware } from "../../transport/middleware.js";
import { rpcErrors } from "../errors.js";

/**
 * Bounds each call by the earlier of the client's deadline and the server's
 * timeout: when it passes, the client gets DEADLINE_EXCEEDED without waiting
 * for the handler, unless a write already began to commit
 * (`call.beginCommit`, which runs the gate attached here): then the call
 * answers the write's outcome, and DEADLINE_EXCEEDED always means "not
 * written". One timer per call, nothing else.
 */
export function deadline(serverTimeoutMs: Record<Call["transport"], number>): Middleware {
  return (next) => (call) =>
    new Promise((resolve, reject) => {
      const due = Math.min(call.deadline ?? Infinity, Date.now() + serverTimeoutMs[call.transport]);
      let expired: Error | undefined;
      let committing = false;
      const timer = setTimeout(
        () => {
          if (committing) return;
          expired = rpcErrors.deadlineExceeded(call.service);
          reject(expired);
        },
        Math.max(0, due - Date.now()),
      );
      const gate = () => {
        if (expired) throw expired;
        committing = true;
      };
      let answer: ReturnType<typeof next>;
      try {
        answer = next(withValue(call, commitGateKey, gate));
      } catch (err) {
        // A handler that throws instead of rejecting.
        clearTimeout(timer);
        reject(err);
        return;
      }
      answer.then(
        (response) => {
          clearTimeout(timer);
          resolve(response);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
}
