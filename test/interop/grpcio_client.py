"""A Python grpcio client of the gRPC port, using no generated code.

It learns every type it needs from the server's reflection service, so it
proves the descriptors handed out are complete. Usage:
    /usr/bin/python3 test/interop/grpcio_client.py 127.0.0.1:PORT
Prints one JSON object describing what it saw; exits 1 on the first surprise.
"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def message_class(pool, name):
    desc = pool.FindMessageTypeByName(name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def field(name, number, kind, type_name=None, repeated=False, oneof=None):
    f = F(name=name, number=number, type=kind,
          label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = type_name
    if oneof is not None:
        f.oneof_index = oneof
    return f


def bootstrap_pool():
    """Just enough schema to speak reflection and read rich errors."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto(
        name="any.proto", package="google.protobuf", syntax="proto3",
        message_type=[descriptor_pb2.DescriptorProto(name="Any", field=[
            field("type_url", 1, F.TYPE_STRING), field("value", 2, F.TYPE_BYTES)])]))
    rpc = descriptor_pb2.FileDescriptorProto(name="rpc.proto", package="google.rpc", syntax="proto3",
                                             dependency=["any.proto"])
    rpc.message_type.add(name="Status", field=[
        field("code", 1, F.TYPE_INT32), field("message", 2, F.TYPE_STRING),
        field("details", 3, F.TYPE_MESSAGE, ".google.protobuf.Any", repeated=True)])
    info = rpc.message_type.add(name="ErrorInfo", field=[
        field("reason", 1, F.TYPE_STRING), field("domain", 2, F.TYPE_STRING)])
    del info  # metadata (a map) is not needed here
    pool.Add(rpc)
    refl = descriptor_pb2.FileDescriptorProto(name="refl.proto", package="grpc.reflection.v1", syntax="proto3")
    req = refl.message_type.add(name="ServerReflectionRequest", field=[
        field("host", 1, F.TYPE_STRING),
        field("file_by_filename", 3, F.TYPE_STRING, oneof=0),
        field("file_containing_symbol", 4, F.TYPE_STRING, oneof=0),
        field("list_services", 7, F.TYPE_STRING, oneof=0)])
    req.oneof_decl.add(name="message_request")
    res = refl.message_type.add(name="ServerReflectionResponse", field=[
        field("valid_host", 1, F.TYPE_STRING),
        field("file_descriptor_response", 4, F.TYPE_MESSAGE, ".grpc.reflection.v1.FileDescriptorResponse", oneof=0),
        field("list_services_response", 6, F.TYPE_MESSAGE, ".grpc.reflection.v1.ListServiceResponse", oneof=0),
        field("error_response", 7, F.TYPE_MESSAGE, ".grpc.reflection.v1.ErrorResponse", oneof=0)])
    res.oneof_decl.add(name="message_response")
    refl.message_type.add(name="FileDescriptorResponse", field=[
        field("file_descriptor_proto", 1, F.TYPE_BYTES, repeated=True)])
    refl.message_type.add(name="ListServiceResponse", field=[
        field("service", 1, F.TYPE_MESSAGE, ".grpc.reflection.v1.ServiceResponse", repeated=True)])
    refl.message_type.add(name="ServiceResponse", field=[field("name", 1, F.TYPE_STRING)])
    refl.message_type.add(name="ErrorResponse", field=[
        field("error_code", 1, F.TYPE_INT32), field("error_message", 2, F.TYPE_STRING)])
    pool.Add(refl)
    return pool


def fail(problem):
    sys.stderr.write(problem + "\n")
    sys.exit(1)


def main(target):
    boot = bootstrap_pool()
    Req = message_class(boot, "grpc.reflection.v1.ServerReflectionRequest")
    Res = message_class(boot, "grpc.reflection.v1.ServerReflectionResponse")
    Status = message_class(boot, "google.rpc.Status")
    ErrorInfo = message_class(boot, "google.rpc.ErrorInfo")
    channel = grpc.insecure_channel(target)
    reflect = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                    request_serializer=Req.SerializeToString,
                                    response_deserializer=Res.FromString)
    requests = [Req(list_services=""),
                Req(file_containing_symbol="user.v1.UserService"),
                Req(file_containing_symbol="kms.v1.KmsService")]
    responses = list(reflect(iter(requests), timeout=10))
    services = sorted(s.name for s in responses[0].list_services_response.service)

    # Only what reflection handed out, in the order received.
    pool = descriptor_pool.DescriptorPool()
    seen = set()
    for r in responses[1:]:
        if r.WhichOneof("message_response") != "file_descriptor_response":
            fail("reflection answered: %s" % r)
        for raw in r.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
            if fdp.name not in seen:
                seen.add(fdp.name)
                pool.Add(fdp)
    resolved = [pool.FindMessageTypeByName(n).full_name
                for n in ("user.v1.GetUserRequest", "user.v1.User", "kms.v1.GetDataKeyRequest", "kms.v1.DataKey")]
    method = pool.FindServiceByName("user.v1.UserService").methods_by_name["GetUser"]
    GetUserRequest = message_class(pool, method.input_type.full_name)
    GetUserResponse = message_class(pool, method.output_type.full_name)
    get_user = channel.unary_unary("/user.v1.UserService/GetUser",
                                   request_serializer=GetUserRequest.SerializeToString,
                                   response_deserializer=GetUserResponse.FromString)
    answers = {}
    def answer(user_id, **options):
        try:
            get_user(GetUserRequest(id=user_id), timeout=10, **options)
            fail("GetUser(%d) succeeded" % user_id)
        except grpc.RpcError as err:
            trailers = dict(err.trailing_metadata() or ())
            status = Status.FromString(trailers["grpc-status-details-bin"])
            info = ErrorInfo.FromString(status.details[0].value)
            return {"code": err.code().name, "reason": info.reason, "domain": info.domain,
                    "detail_type": status.details[0].type_url}

    for user_id in (999999, 0):
        answers[user_id] = answer(user_id)
    # The same call gzip-compressed, with text and binary metadata.
    gzipped = answer(999999, compression=grpc.Compression.Gzip,
                     metadata=(("x-note", "text"), ("x-trace-bin", b"\x00\x01\xfe\xff")))

    health_pool = descriptor_pool.DescriptorPool()
    health_file = descriptor_pb2.FileDescriptorProto(name="h.proto", package="grpc.health.v1", syntax="proto3")
    health_file.message_type.add(name="HealthCheckRequest", field=[field("service", 1, F.TYPE_STRING)])
    health_file.message_type.add(name="HealthCheckResponse", field=[field("status", 1, F.TYPE_INT32)])
    health_pool.Add(health_file)
    HReq = message_class(health_pool, "grpc.health.v1.HealthCheckRequest")
    HRes = message_class(health_pool, "grpc.health.v1.HealthCheckResponse")
    check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                request_serializer=HReq.SerializeToString, response_deserializer=HRes.FromString)
    health = check(HReq(service=""), timeout=10).status
    # grpcio compresses only a message that is worth it: a long name is.
    try:
        check(HReq(service="x" * 2000), timeout=10, compression=grpc.Compression.Gzip)
        fail("Check of an unknown service succeeded")
    except grpc.RpcError as err:
        gzipped_check = err.code().name

    print(json.dumps({"grpcio": grpc.__version__, "services": services, "resolved": resolved,
                      "not_found": answers[999999], "invalid": answers[0], "gzipped": gzipped,
                      "gzipped_check": gzipped_check,
                      "health": health}))


if __name__ == "__main__":
    main(sys.argv[1])
