import type { Call, Middleware } from "../call.js";
import { rpcErrors } from "../errors.js";

/**
 * Bounds each call by the earlier of the client's deadline and the server's
 * timeout. The handler sees the bound through `call.signal`; when it passes,
 * the client gets DEADLINE_EXCEEDED without waiting for the handler, unless
 * a write already began to commit (`call.beginCommit`): then the call answers
 * the write's outcome, and DEADLINE_EXCEEDED always means "not written".
 */
export function deadline(serverTimeoutMs: Record<Call["transport"], number>): Middleware {
  return (next) => (call) =>
    new Promise((resolve, reject) => {
      const due = Math.min(call.deadline ?? Infinity, Date.now() + serverTimeoutMs[call.transport]);
      const controller = new AbortController();
      const onClientAbort = () => controller.abort(call.signal.reason);
      call.signal.addEventListener("abort", onClientAbort, { once: true });
      let expired: Error | undefined;
      let committing = false;
      const timer = setTimeout(
        () => {
          if (committing) return;
          expired = rpcErrors.deadlineExceeded(call.service);
          controller.abort(expired);
          reject(expired);
        },
        Math.max(0, due - Date.now()),
      );
      const beginCommit = () => {
        if (expired) throw expired;
        committing = true;
      };
      const settle = () => {
        clearTimeout(timer);
        call.signal.removeEventListener("abort", onClientAbort);
      };
      next({ ...call, signal: controller.signal, beginCommit }).then(
        (response) => {
          settle();
          resolve(response);
        },
        (err: unknown) => {
          settle();
          reject(err);
        },
      );
    });
}
