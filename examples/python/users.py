"""Calls UserService on the gRPC port from Python with grpcio, no generated code.

The message types come from a descriptor set that `npx buf build` writes from
the protos, so nothing is generated or copied. Usage:

    npx buf build -o /tmp/api.binpb
    /usr/bin/python3 examples/python/users.py /tmp/api.binpb localhost:9000

It looks Alice up (masked view), then asks for user 0 and prints the error's
code and reason as a client branches on them (google.rpc.ErrorInfo, sent in
the grpc-status-details-bin trailer).
"""
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory


def load_types(path):
    """Every message of the descriptor set, by full name."""
    files = descriptor_pb2.FileDescriptorSet.FromString(open(path, "rb").read())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:  # buf writes imports before the files that use them
        pool.Add(file)

    def message(name):
        desc = pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(desc)
        return message_factory.MessageFactory(pool).GetPrototype(desc)

    return message


def unary(channel, types, method, request_type, response_type):
    return channel.unary_unary(
        f"/user.v1.UserService/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=types(response_type).FromString,
    )


def error_reason(types, err):
    """The ErrorInfo reason of a failed call, or None."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = types("google.rpc.Status").FromString(value)
            for detail in status.details:
                if detail.type_url.endswith("/google.rpc.ErrorInfo"):
                    return types("google.rpc.ErrorInfo").FromString(detail.value).reason
    return None


def main(descriptor_set, target):
    types = load_types(descriptor_set)
    with grpc.insecure_channel(target) as channel:
        lookup = unary(channel, types, "LookupUser", "user.v1.LookupUserRequest",
                       "user.v1.LookupUserResponse")
        request = json_format.ParseDict({"email": "alice@example.com", "view": "VIEW_MASKED"},
                                        types("user.v1.LookupUserRequest")())
        found = lookup(request, timeout=10)
        print("LookupUser:", json_format.MessageToJson(found.user, indent=None))

        get = unary(channel, types, "GetUser", "user.v1.GetUserRequest", "user.v1.GetUserResponse")
        try:
            get(types("user.v1.GetUserRequest")(id=0), timeout=10)
            sys.exit("GetUser id 0: expected an error")
        except grpc.RpcError as err:
            print(f"GetUser id 0: {err.code().name} {error_reason(types, err)}: {err.details()}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: users.py DESCRIPTOR_SET HOST:PORT")
    main(sys.argv[1], sys.argv[2])
