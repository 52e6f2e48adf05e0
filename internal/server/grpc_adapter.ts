import {
  fromBinary,
  toBinary,
  type DescMethod,
  type DescService,
  type Message,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { noDeadline } from "../pkg/rpc/call.js";
import type { Route } from "./handlers.js";
import { serviceError, toGrpcStatus } from "./errors.js";

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
 * reason (grpc-js would answer a throwing deserializer with INTERNAL).
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
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const route of routes.filter((r) => r.service === service)) {
    impl[route.method.localName] = unaryHandler(route);
  }
  return impl;
}

function unaryHandler(route: Route): grpc.handleUnaryCall<Buffer, Message> {
  return (call, callback) => {
    let request: Message;
    try {
      request = fromBinary(route.method.input, call.request);
    } catch {
      const message = `request is not a valid ${route.method.input.typeName}`;
      const error = serviceError(route.service, Code.InvalidArgument, "VALIDATION_FAILED", message);
      callback(toGrpcStatus(error), null);
      return;
    }
    const controller = new AbortController();
    call.on("cancelled", () =>
      controller.abort(new ConnectError("client cancelled", Code.Canceled)),
    );
    const due = call.getDeadline();
    const deadline = typeof due === "number" ? due : due.getTime();
    route
      .handler({
        service: route.service,
        method: route.method,
        request,
        signal: controller.signal,
        deadline: Number.isFinite(deadline) ? deadline : undefined,
        transport: "grpc",
        requestHeader: toHeaders(call.metadata),
        beginCommit: noDeadline,
      })
      .then(
        (response) => callback(null, response),
        (err: unknown) => {
          const error =
            err instanceof ConnectError
              ? err
              : serviceError(route.service, Code.Internal, "INTERNAL", "internal error");
          callback(toGrpcStatus(error), null);
        },
      );
  };
}

function toHeaders(metadata: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(metadata.getMap())) {
    if (typeof value === "string") headers.append(key, value);
  }
  return headers;
}
