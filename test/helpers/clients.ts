import {
  create,
  fromBinary,
  type DescMessage,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { grpcDefinition } from "../../internal/server/grpc_adapter.js";
import { ErrorInfoSchema } from "../../third_party/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../third_party/google/rpc/status_pb.js";

export interface GrpcFailure {
  code: grpc.status;
  message: string;
  errorInfo: MessageShape<typeof ErrorInfoSchema> | undefined;
}

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

/** Code, message and ErrorInfo of a grpc-js error, read from grpc-status-details-bin. */
export function grpcFailure(err: unknown): GrpcFailure {
  const e = err as grpc.ServiceError;
  const bin = e.metadata?.get("grpc-status-details-bin")[0];
  const status = bin ? fromBinary(StatusSchema, bin as Buffer) : undefined;
  const info = status?.details
    .map((d) => anyUnpack(d, ErrorInfoSchema))
    .find((x) => x !== undefined);
  return { code: e.code, message: e.details, errorInfo: info };
}
