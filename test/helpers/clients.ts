import {
  create,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { grpcDefinition } from "../../internal/server/grpc_adapter.js";

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
