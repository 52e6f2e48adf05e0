import type { DescMethodUnary, DescService, Message } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import { dueQueue, type Due } from "../../pkg/timer/due.js";
import { commitGateKey, type Call, type RequestHeader } from "../../transport/call.js";
import { callerKey, type Caller } from "../../transport/caller.js";
import type { ContextValues } from "../../transport/context_values.js";
import type { Middleware } from "../../transport/middleware.js";
import { rpcErrors } from "../errors.js";

/**
 * Bounds each call by the earlier of the client's deadline and the server's
 * timeout: when it passes, the client gets DEADLINE_EXCEEDED without waiting
 * for the handler, unless a write already began to commit
 * (`call.beginCommit`, which runs the gate attached here): then the call
 * answers the write's outcome, and DEADLINE_EXCEEDED always means "not
 * written". What a call costs here: the promise the client's answer comes
 * from, the copy of the call the handler gets (which is also the deadline's
 * state and its gate), and a place in one timer shared by every call
 * (internal/pkg/timer), not a timer of its own.
 */
export function deadline(serverTimeoutMs: Record<Call["transport"], number>): Middleware {
  const queue = dueQueue();
  return (next) => (received) =>
    new Promise<Message>((resolve, reject) => {
      const timeout = serverTimeoutMs[received.transport];
      const ms =
        received.deadline === undefined
          ? timeout
          : Math.min(received.deadline - Date.now(), timeout);
      const call = new BoundedCall(received, performance.now() + (ms > 0 ? ms : 0), reject);
      queue.add(call);
      let answer: Promise<Message>;
      try {
        answer = next(call);
      } catch (err) {
        // A handler that throws instead of rejecting.
        queue.delete(call);
        reject(err);
        return;
      }
      answer.then(
        (response) => {
          queue.delete(call);
          resolve(response);
        },
        (err: unknown) => {
          queue.delete(call);
          reject(err);
        },
      );
    });
}

/**
 * The call as the handler sees it: the one received, with the commit gate
 * attached (`values` is built only if read: the handler reaches the gate
 * through beginCommit, the caller through `caller`).
 */
class BoundedCall implements Call, Due {
  readonly service: DescService;
  readonly method: DescMethodUnary;
  readonly request: Message;
  readonly deadline: number | undefined;
  readonly transport: "grpc" | "connect" | "rest";
  readonly requestHeader: RequestHeader;
  readonly peer: string | undefined;
  readonly refused: ConnectError | undefined;
  slot = -1;
  private readonly received: ContextValues;
  private attached: ContextValues | undefined;
  private expired: ConnectError | undefined;
  private committing = false;

  constructor(
    call: Call,
    readonly dueAt: number,
    private readonly reject: (err: unknown) => void,
  ) {
    this.service = call.service;
    this.method = call.method;
    this.request = call.request;
    this.deadline = call.deadline;
    this.transport = call.transport;
    this.requestHeader = call.requestHeader;
    this.peer = call.peer;
    this.refused = call.refused;
    this.received = call.values;
  }

  get values(): ContextValues {
    return (this.attached ??= this.received.with(commitGateKey, () => this.beginCommit()));
  }

  get caller(): Caller | undefined {
    return this.received.get(callerKey);
  }

  beginCommit(): void {
    if (this.expired) throw this.expired;
    this.committing = true;
  }

  /** The deadline passed: DEADLINE_EXCEEDED, unless a write is committing. */
  fire(): void {
    if (this.committing) return;
    this.expired = rpcErrors.deadlineExceeded(this.service);
    this.reject(this.expired);
  }
}
