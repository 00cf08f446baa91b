"""A gRPC status with details, for what the engine reads from them: a partial failure."""

from __future__ import annotations

from typing import NamedTuple

import grpc
from google.protobuf import any_pb2, struct_pb2
from google.rpc import status_pb2
from pulumi.runtime.proto import provider_pb2


class Status(NamedTuple):
    """A gRPC status with details (``grpc.Status``'s fields): the engine reads a partial failure from them."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, bytes], ...]


def partial_failure(text: str, run_id: str, state: struct_pb2.Struct) -> Status:
    """A create or update that failed part-way, with the run as it is (``ErrorResourceInitFailed``): the
    engine keeps it in the state, so ``pulumi destroy`` can reach it and the next ``up`` finishes it."""
    failed = provider_pb2.ErrorResourceInitFailed(id=run_id, properties=state, reasons=[text])
    detail = any_pb2.Any()
    detail.Pack(failed)
    status = status_pb2.Status(code=grpc.StatusCode.UNKNOWN.value[0], message=text, details=[detail])
    return Status(grpc.StatusCode.UNKNOWN, text, (("grpc-status-details-bin", status.SerializeToString()),))
