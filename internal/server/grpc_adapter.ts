import {
  fromBinary,
  toBinary,
  type DescMethod,
  type DescService,
  type Message,
} from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { createCall, type RequestHeader } from "../transport/call.js";
import { requestReadOptions } from "./codec.js";
import { refuse, type Route } from "./handlers.js";
import { rpcErrors } from "./errors.js";
import { toGrpcStatus } from "./grpc_status.js";
import { requestRefused } from "./request_refused.js";
import { refusalOf, replaceOnOwnCall, type OwnCall } from "./seams/grpc_js.js";

// The bridge from protobuf-es descriptors to @grpc/grpc-js: a service
// definition (paths and codecs) and one unary handler shape. It carries calls
// to the shared chained handlers; it implements nothing itself.

/** grpc-js definition of a service, for servers and clients alike. */
export function grpcDefinition(
  service: DescService,
  typeName = service.typeName,
): grpc.ServiceDefinition {
  return Object.fromEntries(
    service.methods.map((method) => [method.localName, methodDefinition(method, typeName)]),
  );
}

function methodDefinition(
  method: DescMethod,
  typeName: string,
): grpc.MethodDefinition<Message, Message> {
  return {
    path: `/${typeName}/${method.name}`,
    requestStream:
      method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream:
      method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: (m) => Buffer.from(toBinary(method.input, m)),
    requestDeserialize: (b) => fromBinary(method.input, b),
    responseSerialize: (m) => Buffer.from(toBinary(method.output, m)),
    responseDeserialize: (b) => fromBinary(method.output, b),
    originalName: method.localName,
  };
}

/**
 * The definition the server registers: requests arrive as bytes and are
 * parsed in the handler, so a malformed message is INVALID_ARGUMENT with a
 * reason, logged and counted by the chain (grpc-js would answer a throwing
 * deserializer with INTERNAL, before any of our code).
 */
export function grpcServerDefinition(service: DescService): grpc.ServiceDefinition {
  const definition = grpcDefinition(service);
  for (const method of Object.values(definition)) method.requestDeserialize = (b: Buffer) => b;
  return definition;
}

/** The grpc-js implementation object serving a service's routes. */
export function grpcImplementation(
  service: DescService,
  routes: Route[],
  maxRequestBytes: number,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const route of routes.filter((r) => r.service === service)) {
    impl[route.method.localName] = unaryHandler(route, maxRequestBytes);
  }
  return impl;
}

function unaryHandler(
  route: Route,
  maxRequestBytes: number,
): grpc.handleUnaryCall<Buffer, Message> {
  const answer = (callback: grpc.sendUnaryData<Message>) => (err: unknown) => {
    const error = err instanceof ConnectError ? err : rpcErrors.internal(route.service);
    callback(toGrpcStatus(error), null);
  };
  return (call, callback) => {
    let request: Message;
    try {
      request = fromBinary(route.method.input, call.request, requestReadOptions);
    } catch {
      const error = requestRefused(route.method, "malformed", maxRequestBytes);
      void refuse(route, "grpc", toHeaders(call.metadata), error, peerAddress(call.getPeer())).then(
        answer(callback),
      );
      return;
    }
    const due = call.getDeadline();
    const deadline = typeof due === "number" ? due : due.getTime();
    route
      .handler(
        createCall({
          service: route.service,
          method: route.method,
          request,
          deadline: Number.isFinite(deadline) ? deadline : undefined,
          transport: "grpc",
          requestHeader: metadataHeader(call.metadata),
          peer: peerAddress(call.getPeer()),
        }),
      )
      .then((response) => callback(null, response), answer(callback));
  };
}

/**
 * grpc-js answers some requests itself before a message reaches any handler:
 * a bad grpc-timeout header (INTERNAL), a message over the limit
 * (RESOURCE_EXHAUSTED), one that does not decompress (INTERNAL), an unknown
 * compression or no message at all (UNIMPLEMENTED). Installed on grpc-js's
 * own call (it sends those from inside, past any responder: only the
 * instance's own method sees them; see seams/grpc_js.ts), this sends them through the chain as
 * refusals instead, as the caller's call (`header`), so that they get the code
 * and ErrorInfo the HTTP port gives, and are logged and counted, once. Once a
 * message has been delivered (the interceptor calls the function returned),
 * grpc-js's statuses are about the response and pass as they are; so do its
 * deadline and cancellation, which say nothing of the request, and every
 * status we produced (it carries details).
 */
export function refuseThroughChain(
  call: OwnCall,
  route: Route,
  maxRequestBytes: number,
  header: () => RequestHeader,
): () => void {
  let delivered = false;
  let refusing = false;
  replaceOnOwnCall(call, "sendStatus", (send) => (status) => {
    // Our answer is on its way; what grpc-js adds after it (a half-close
    // finding no message) would be a second answer to the same call.
    if (refusing) return;
    if (
      delivered ||
      passes.has(status.code) ||
      status.metadata?.get("grpc-status-details-bin").length
    ) {
      return send(status);
    }
    refusing = true;
    const error = requestRefused(route.method, refusalOf(status), maxRequestBytes);
    void refuse(route, "grpc", header(), error, peerAddress(call.getPeer())).then((e) =>
      send(toGrpcStatus(e) as grpc.StatusObject),
    );
  });
  return () => {
    delivered = true;
  };
}

const passes = new Set([grpc.status.OK, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED]);

/** The address in grpc-js's "address:port" (no brackets around IPv6); undefined when unknown. */
export function peerAddress(peer: string): string | undefined {
  const colon = peer.lastIndexOf(":");
  return colon > 0 ? peer.slice(0, colon) : undefined;
}

/** Reads gRPC metadata in place: no copy of every header per call. */
export const metadataHeader = (metadata: grpc.Metadata): RequestHeader => ({
  get: (name) => {
    const value = metadata.get(name)[0];
    return typeof value === "string" ? value : null;
  },
});

function toHeaders(metadata: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(metadata.getMap())) {
    if (typeof value === "string") headers.append(key, value);
  }
  return headers;
}
