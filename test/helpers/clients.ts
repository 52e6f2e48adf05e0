import {
  create,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { grpcDefinition } from "./grpc_definition.js";
import {
  ServerReflection,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from "../../third_party/grpc/reflection/v1/reflection_pb.js";

/** A plain @grpc/grpc-js client for a service, built from its descriptor;
 *  with `token`, every call sends it as a bearer token. */
export function grpcClient(service: DescService, port: number, token?: string) {
  const Ctor = grpc.makeGenericClientConstructor(grpcDefinition(service), service.name);
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return {
    close: () => client.close(),
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      request: MessageInitShape<I>,
      deadlineMs = 10_000,
    ): Promise<MessageShape<O>> {
      const fn = (
        client as unknown as Record<
          string,
          grpc.requestCallback<unknown> & ((...a: unknown[]) => void)
        >
      )[method.localName]!.bind(client);
      const metadata = new grpc.Metadata();
      if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
      return new Promise((resolve, reject) =>
        fn(
          create(method.input, request),
          metadata,
          { deadline: Date.now() + deadlineMs },
          (err: unknown, res: unknown) => (err ? reject(err) : resolve(res as MessageShape<O>)),
        ),
      );
    },
  };
}

export type ServerReflectionRequestInit = MessageInitShape<typeof ServerReflectionRequestSchema>;

/** One grpc.reflection ServerReflectionInfo stream on `port` (v1 or v1alpha by `path`): every answer to `requests`. */
export async function reflectOn(
  port: number,
  path: string,
  requests: ServerReflectionRequestInit[],
): Promise<ServerReflectionResponse[]> {
  const definition = grpcDefinition(ServerReflection, path);
  const Ctor = grpc.makeGenericClientConstructor(definition, "ServerReflection");
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = (
    client as unknown as Record<string, () => grpc.ClientDuplexStream<unknown, unknown>>
  )[ServerReflection.method.serverReflectionInfo.localName]!.call(client);
  const responses: ServerReflectionResponse[] = [];
  const done = new Promise<void>((resolve, reject) => {
    call.on("data", (r: ServerReflectionResponse) => responses.push(r));
    call.on("end", resolve);
    call.on("error", reject);
  });
  for (const r of requests) call.write(create(ServerReflectionRequestSchema, r));
  call.end();
  try {
    await done;
  } finally {
    client.close();
  }
  return responses;
}
