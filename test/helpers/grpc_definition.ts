import {
  fromBinary,
  toBinary,
  type DescMethod,
  type DescService,
  type Message,
} from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";

/** A grpc-js client definition of a service, from its protobuf-es descriptors. */
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
