"""The engine's log, as the plugin writes to it: lines a user reads beside a resource in ``pulumi preview`` and
``up`` (why a run is replaced). A message that cannot be delivered is dropped: logging never fails a call."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import grpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc


class EngineLog:
    """Connects on first use to the address the engine gave the plugin (``Handshake``, or ``Attach``)."""

    def __init__(self) -> None:
        self.address: str | None = None
        self._stub: Any = None
        self._lock = threading.Lock()

    def warn(self, urn: str, message: str) -> None:
        self._send(engine_pb2.WARNING, urn, message)

    def info(self, urn: str, message: str) -> None:
        self._send(engine_pb2.INFO, urn, message)

    def _send(self, severity: engine_pb2.LogSeverity.ValueType, urn: str, message: str) -> None:
        stub = self._connected()
        if stub is None:
            return
        with contextlib.suppress(grpc.RpcError):
            stub.Log(engine_pb2.LogRequest(severity=severity, message=message, urn=urn), timeout=10)

    def _connected(self) -> Any:
        with self._lock:
            if self._stub is None and self.address:
                self._stub = engine_pb2_grpc.EngineStub(grpc.insecure_channel(self.address))
            return self._stub
