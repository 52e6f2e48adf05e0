"""Calls the service from Python with grpcio and generated stubs.

It creates a user, finds them by email, reads them masked and in full, rotates
the data key, and handles a refusal by its reason (the google.rpc.ErrorInfo
detail). The stubs in gen/ come from `npx buf generate` (see README.md).
Settings come from the environment:

    API_ADDR   the gRPC address (default localhost:9000)
    API_TOKEN  a bearer token with the scopes users.read, users.write,
               pii.read and kms.admin (unset: no token, for a server with
               authentication off)

It exits 1, saying why, when the service answers anything unexpected.
"""
import os
import secrets
import sys

# The generated modules import each other by proto package (user.v1,
# buf.validate, google.rpc), so gen/ goes on the path.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402
from kms.v1 import kms_pb2, kms_pb2_grpc  # noqa: E402
from user.v1 import user_pb2, user_pb2_grpc  # noqa: E402


def error_info(err):
    """The google.rpc.ErrorInfo of a failed call, or None.

    The server sends a google.rpc.Status in the grpc-status-details-bin
    trailer; its details are Any messages. (pip's grpcio-status does this
    unpacking as rpc_status.from_call; Debian does not package it.)
    """
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    return None


def describe(err):
    """A failed call's code and reason beside its message."""
    info = error_info(err)
    return f"{err.code().name}, reason {info.reason if info else ''}: {err.details()}"


def scenario(users, kms, call):
    # A new user each run, so the example can run again on the same server.
    username = "py_" + secrets.token_hex(4)
    email = username + "@example.com"
    created = users.CreateUser(
        user_pb2.CreateUserRequest(
            username=username,
            password="Pw1-" + secrets.token_hex(12),  # a real client takes it from the person
            email=email,
            name="Ada Lovelace",
        ),
        **call,
    )
    user_id = created.user.id
    print(f"created user {user_id} {username}")

    found = users.LookupUser(user_pb2.LookupUserRequest(email=email), **call)
    if found.user.id != user_id:
        sys.exit(f"error: LookupUser by email found user {found.user.id}, not {user_id}")
    print(f"found by email: user {user_id}")

    # Masked is for screens and logs; full needs the pii.read scope, and
    # without it the service answers masked whatever view is asked for.
    masked = users.GetUser(user_pb2.GetUserRequest(id=user_id, view=user_pb2.VIEW_MASKED), **call)
    print(f"masked: email {masked.user.email}, name {masked.user.name}")
    full = users.GetUser(user_pb2.GetUserRequest(id=user_id, view=user_pb2.VIEW_FULL), **call)
    if full.user.email != email:
        sys.exit(
            f"error: the full read came back as {full.user.email!r}: "
            "does the token have pii.read?"
        )
    print(f"full: email {full.user.email}, name {full.user.name}")

    rotated = kms.RotateDataKey(kms_pb2.RotateDataKeyRequest(reason="examples/python"), **call)
    print(f"rotated the data key: version {rotated.key.version} (was {rotated.previous_version})")

    # The email is taken now. A client branches on the ErrorInfo reason,
    # which is stable, never on the message, which is for people.
    try:
        users.CreateUser(
            user_pb2.CreateUserRequest(
                username=username + "_2", password="Pw1-" + secrets.token_hex(12), email=email
            ),
            **call,
        )
        sys.exit("error: CreateUser with a taken email succeeded")
    except grpc.RpcError as err:
        info = error_info(err)
        if not info or info.reason != "USER_ALREADY_EXISTS":
            raise
        print(
            f"the same email again: {err.code().name}, reason {info.reason} "
            f"(field {info.metadata['field']}): handled"
        )


def main():
    addr = os.environ.get("API_ADDR", "localhost:9000")
    token = os.environ.get("API_TOKEN")
    # Sent with every call: a deadline (without one a call to a stuck server
    # waits forever) and the token as gRPC metadata.
    call = {"timeout": 10, "metadata": [("authorization", f"Bearer {token}")] if token else []}
    if not token:
        print("API_TOKEN is not set: calling without a token")
    # Plaintext, as the development server listens; with TLS use
    # grpc.secure_channel(addr, grpc.ssl_channel_credentials()).
    with grpc.insecure_channel(addr) as channel:
        try:
            users = user_pb2_grpc.UserServiceStub(channel)
            kms = kms_pb2_grpc.KmsServiceStub(channel)
            scenario(users, kms, call)
        except grpc.RpcError as err:
            sys.exit(f"error: {describe(err)}")


if __name__ == "__main__":
    main()
