import { create, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Serving,
  HealthCheckResponseSchema,
  type HealthCheckRequest,
} from "../../../third_party/grpc/health/v1/health_pb.js";
import type { PlainMethod, Requests, Responses } from "./plain.js";

export interface HealthService {
  /** grpc.health.v1's methods by path. */
  methods: Map<string, PlainMethod>;
  /** One status for the server ("") and every service; Watch streams see changes only. */
  set(serving: boolean): void;
  /** Ends every Watch stream (status 0), so that none holds shutdown. */
  endWatches(): void;
}

/** grpc.health.v1 (Check and Watch) for the server and the named services. */
export function healthService(serviceNames: string[]): HealthService {
  const names = new Set(["", ...serviceNames]);
  let status = Serving.SERVING;
  const watches = new Set<{ service: string; responses: Responses }>();
  const answer = (service: string) =>
    create(HealthCheckResponseSchema, {
      status: names.has(service) ? status : Serving.SERVICE_UNKNOWN,
    });

  const check: PlainMethod["open"] = (responses) => {
    let service: string | undefined;
    return {
      message: (request) => {
        if (service !== undefined) {
          return responses.end(
            new ConnectError("Check takes one request message", Code.Unimplemented),
          );
        }
        service = (request as HealthCheckRequest).service;
      },
      end: () => {
        if (service === undefined) {
          return responses.end(new ConnectError("no request message", Code.InvalidArgument));
        }
        if (!names.has(service)) {
          return responses.end(new ConnectError("unknown service", Code.NotFound));
        }
        responses.send(answer(service));
        responses.end();
      },
      close: () => undefined,
    };
  };
  const watch: PlainMethod["open"] = (responses): Requests => {
    let entry: { service: string; responses: Responses } | undefined;
    return {
      message: (request: Message) => {
        if (entry) return;
        entry = { service: (request as HealthCheckRequest).service, responses };
        watches.add(entry);
        responses.send(answer(entry.service));
      },
      // The client has said all it will; the stream goes on until it leaves.
      end: () => undefined,
      close: () => {
        if (entry) watches.delete(entry);
      },
    };
  };
  const method = (open: PlainMethod["open"]): PlainMethod => ({
    input: Health.method.check.input,
    output: Health.method.check.output,
    open,
  });
  return {
    methods: new Map([
      [`/${Health.typeName}/${Health.method.check.name}`, method(check)],
      [`/${Health.typeName}/${Health.method.watch.name}`, method(watch)],
    ]),
    set: (serving) => {
      const next = serving ? Serving.SERVING : Serving.NOT_SERVING;
      if (next === status) return;
      status = next;
      for (const w of watches) if (names.has(w.service)) w.responses.send(answer(w.service));
    },
    endWatches: () => {
      for (const w of [...watches]) w.responses.end();
    },
  };
}
