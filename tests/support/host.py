"""Drive the real ``python -m pulumi.dynamic`` provider host over gRPC, the way the Pulumi engine does.

Going through the real host (not calling ResourceProvider methods directly) catches what only the engine
path exposes: dill round-tripping of the provider, numbers arriving as floats, secrets/unknowns on the
wire, the host's own glue around Check/Read/Update, and tracebacks surfacing as gRPC error details.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import grpc
from google.protobuf import struct_pb2  # type: ignore[import-untyped, unused-ignore]
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc
from pulumi.runtime.rpc import UNKNOWN

__all__ = [
    "UNKNOWN",
    "CheckOutcome",
    "DiffOutcome",
    "DynamicHost",
    "HostError",
    "ReadOutcome",
    "from_struct",
    "is_secret",
    "isolated_env",
    "secret",
    "to_struct",
    "unwrap",
    "with_provider",
    "without_provider",
]

PROVIDER_KEY = "__provider"
RESOURCE_TYPE = "pulumi-python:dynamic:Resource"
_TESTS_DIR = Path(__file__).resolve().parents[1]
_REPO_DIR = _TESTS_DIR.parent
_STARTUP_TIMEOUT = 30.0
_CHANGES: dict[int, Literal["none", "some", "unknown"]] = {
    provider_pb2.DiffResponse.DIFF_NONE: "none",
    provider_pb2.DiffResponse.DIFF_SOME: "some",
    provider_pb2.DiffResponse.DIFF_UNKNOWN: "unknown",
}


class HostError(Exception):
    """A failed RPC; ``details`` carries the host's traceback text."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


@dataclass(frozen=True)
class CheckOutcome:
    inputs: dict[str, Any]
    failures: list[tuple[str, str]]


@dataclass(frozen=True)
class DiffOutcome:
    changes: Literal["none", "some", "unknown"]
    replaces: list[str]
    delete_before_replace: bool
    diffs: list[str] = field(default_factory=list)
    stables: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReadOutcome:
    id: str
    outs: dict[str, Any]
    inputs: dict[str, Any] | None


def secret(value: Any) -> dict[str, Any]:
    """Mark a value as a Pulumi secret (the RPC signature dict the engine puts on the wire)."""
    return dict(rpc.wrap_rpc_secret(value))


def is_secret(value: Any) -> bool:
    return rpc.is_rpc_secret(value)


def unwrap(value: Any) -> Any:
    """Recursively strip secret wrappers."""
    value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, Mapping):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def isolated_env(**extra: str) -> dict[str, str]:
    """This process's environment without any MLflow or Databricks setting, plus ``extra``.

    Provider hosts get this so that nothing on the machine running the tests decides where they connect.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "MLFLOW_"))}
    return {**env, **extra}


def with_provider(props: Mapping[str, Any], provider: object) -> dict[str, Any]:
    """Copy of ``props`` carrying the provider serialized exactly as the SDK's dynamic.Resource does."""
    return {**props, PROVIDER_KEY: serialize_provider(provider)}


def without_provider(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


def _contains_unknown(value: Any) -> bool:
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, Mapping):
        return any(_contains_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_unknown(v) for v in value)
    return False


def _restore_unknowns(value: Any) -> Any:
    """deserialize_properties(keep_unknowns=True) yields Unknown() objects; map them back to UNKNOWN."""
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, Mapping):
        return {k: _restore_unknowns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_unknowns(v) for v in value]
    return value


def to_struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    # pulumi's own serializer; it is async, so give each call (and thread) its own loop.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(dict(props), {}))
    finally:
        loop.close()


def from_struct(struct: struct_pb2.Struct, keep_unknowns: bool = False) -> dict[str, Any]:
    props = rpc.deserialize_properties(struct, keep_unknowns)
    assert isinstance(props, dict), f"expected a property map, got {props!r}"
    return _restore_unknowns(props) if keep_unknowns else props


def _stringify(value: Any) -> str:
    value = unwrap(value)
    return value if isinstance(value, str) else json.dumps(value)


def first_line(
    process: subprocess.Popen[bytes], thread_name: str, rest: list[str] | None = None
) -> tuple[str | None, threading.Thread]:
    """The first line ``process`` prints (a provider host's or plugin's port): None if it ended first,
    ``"<nothing>"`` after the start-up timeout. The thread keeps draining stdout (into ``rest``) so that a
    print can never block the process."""
    first: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for i, raw in enumerate(iter(process.stdout.readline, b"")):
            line = raw.decode(errors="replace").rstrip("\n")
            if i == 0:
                first.put(line)
            elif rest is not None:
                rest.append(line)
        first.put(None)

    thread = threading.Thread(target=pump, name=thread_name, daemon=True)
    thread.start()
    try:
        return first.get(timeout=_STARTUP_TIMEOUT), thread
    except queue.Empty:
        return "<nothing>", thread


class DynamicHost:
    """One ``python -m pulumi.dynamic`` process plus a gRPC stub; usable from many threads at once."""

    def __init__(
        self,
        extra_env: Mapping[str, str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        rpc_timeout: float = 120.0,
        urn_name: str = "test",
    ) -> None:
        full_env = dict(os.environ if env is None else env)
        full_env.update(extra_env or {})
        # Providers are pickled by reference: tests/support/* and provider/pulumi_mlflow_runs must import.
        paths = [str(_TESTS_DIR)]  # test-only providers; the package itself comes from the venv
        if full_env.get("PYTHONPATH"):
            paths.append(full_env["PYTHONPATH"])
        full_env["PYTHONPATH"] = os.pathsep.join(paths)
        self.rpc_timeout = rpc_timeout
        self.name = urn_name
        self.urn = f"urn:pulumi:stack::project::{RESOURCE_TYPE}::{urn_name}"
        self.accept_secrets = False  # what the host's ConfigureResponse says; it is always False
        fd, stderr_name = tempfile.mkstemp(prefix="dynamic-host-", suffix=".stderr")
        self.stderr_path = Path(stderr_name)
        self._stdout_lines: list[str] = []
        self._final_stderr: str | None = None
        self._pump: threading.Thread | None = None
        self._channel: grpc.Channel | None = None
        # -u like the engine's pulumi-resource-pulumi-python shim: the host never flushes its port line.
        with os.fdopen(fd, "wb") as stderr_file:
            self.process = subprocess.Popen(
                [sys.executable, "-u", "-m", "pulumi.dynamic"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_file, env=full_env,
            )  # fmt: skip
        try:
            self.port = self._read_port()
            self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
            grpc.channel_ready_future(self._channel).result(timeout=_STARTUP_TIMEOUT)
            self.stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
        except BaseException:
            self.close()
            raise

    def _read_port(self) -> int:
        line, self._pump = first_line(self.process, "dynamic-host-stdout", self._stdout_lines)
        if line is None or not line.strip().isdigit():
            self.close()
            raise RuntimeError(f"dynamic host did not print its port (got {line!r}):\n{self.stderr_text()}")
        return int(line)

    # -- lifecycle -----------------------------------------------------------------------------------
    def stderr_text(self) -> str:
        if self._final_stderr is not None:
            return self._final_stderr
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def stdout_text(self) -> str:
        return "\n".join(self._stdout_lines)

    def close(self) -> None:
        """Close the channel and kill the host (it never exits by itself); stderr stays readable."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self._pump is not None:
            self._pump.join(timeout=5)  # EOF follows the kill; closing under a live reader would raise
        if self.process.stdout is not None and not (self._pump and self._pump.is_alive()):
            self.process.stdout.close()
        if self._final_stderr is None:
            self._final_stderr = self.stderr_text()
            self.stderr_path.unlink(missing_ok=True)

    def __enter__(self) -> DynamicHost:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------------
    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=self.rpc_timeout)
        except grpc.RpcError as err:
            code = err.code().name if hasattr(err, "code") else "UNKNOWN"
            details = (err.details() if hasattr(err, "details") else None) or str(err)
            raise HostError(code, details) from None

    def _props(self, props: Mapping[str, Any], allow_unknowns: bool) -> struct_pb2.Struct:
        """Marshal like the engine: secrets stripped (host refuses them), unknowns only when allowed."""
        if not allow_unknowns and _contains_unknown(props):
            raise ValueError("UNKNOWN values are only sent in preview; pass keep_unknowns=True/preview=True")
        return to_struct(props if self.accept_secrets else unwrap(props))

    with_provider = staticmethod(with_provider)

    # -- RPCs ----------------------------------------------------------------------------------------
    def configure(self, config: Mapping[str, Any]) -> provider_pb2.ConfigureResponse:
        """Keys look like "databricks:host"; wrap values with ``secret()`` to send them as secrets."""
        request = provider_pb2.ConfigureRequest(
            variables={k: _stringify(v) for k, v in config.items()},
            args=to_struct(config),
            acceptSecrets=True,
            acceptResources=True,
            sends_old_inputs=True,
            sends_old_inputs_to_delete=True,
        )
        response: provider_pb2.ConfigureResponse = self._call("Configure", request)
        self.accept_secrets = response.acceptSecrets
        return response

    def check(
        self,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        *,
        keep_unknowns: bool = False,
        preview: bool = False,
    ) -> CheckOutcome:
        """CheckRequest has no preview field; ``preview`` only allows/keeps unknowns."""
        unknowns = keep_unknowns or preview
        request = provider_pb2.CheckRequest(
            urn=self.urn, type=RESOURCE_TYPE, name=self.name,
            olds=self._props(olds, unknowns), news=self._props(news, unknowns),
        )  # fmt: skip
        response: provider_pb2.CheckResponse = self._call("Check", request)
        failures = [(f.property, f.reason) for f in response.failures]
        return CheckOutcome(from_struct(response.inputs, unknowns), failures)

    def diff(
        self,
        id_: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        *,
        old_inputs: Mapping[str, Any] | None = None,
        keep_unknowns: bool = False,
        preview: bool = False,
    ) -> DiffOutcome:
        """``olds`` are prior outputs, ``news`` the checked inputs (as the engine sends them)."""
        unknowns = keep_unknowns or preview
        request = provider_pb2.DiffRequest(
            id=id_, urn=self.urn, type=RESOURCE_TYPE, name=self.name,
            olds=self._props(olds, unknowns), news=self._props(news, unknowns),
            old_inputs=self._props(old_inputs or {}, unknowns),
        )  # fmt: skip
        response: provider_pb2.DiffResponse = self._call("Diff", request)
        return DiffOutcome(
            changes=_CHANGES[response.changes],
            replaces=list(response.replaces),
            delete_before_replace=response.deleteBeforeReplace,
            diffs=list(response.diffs),
            stables=list(response.stables),
        )

    def create(self, props: Mapping[str, Any], *, preview: bool = False) -> tuple[str, dict[str, Any]]:
        request = provider_pb2.CreateRequest(
            urn=self.urn, type=RESOURCE_TYPE, name=self.name,
            properties=self._props(props, preview), preview=preview,
        )  # fmt: skip
        response: provider_pb2.CreateResponse = self._call("Create", request)
        return response.id, from_struct(response.properties, preview)

    def read(self, id_: str, props: Mapping[str, Any], inputs: Mapping[str, Any] | None = None) -> ReadOutcome:
        """Refresh: ``props`` are prior outputs, ``inputs`` prior inputs. Empty returned id = gone."""
        request = provider_pb2.ReadRequest(
            id=id_, urn=self.urn, type=RESOURCE_TYPE, name=self.name,
            properties=self._props(props, False),
            inputs=self._props(inputs, False) if inputs is not None else None,
        )  # fmt: skip
        response: provider_pb2.ReadResponse = self._call("Read", request)
        new_inputs = from_struct(response.inputs) if response.HasField("inputs") else None
        return ReadOutcome(response.id, from_struct(response.properties), new_inputs)

    def update(
        self,
        id_: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        *,
        old_inputs: Mapping[str, Any] | None = None,
        preview: bool = False,
    ) -> dict[str, Any]:
        request = provider_pb2.UpdateRequest(
            id=id_, urn=self.urn, type=RESOURCE_TYPE, name=self.name,
            olds=self._props(olds, False), news=self._props(news, preview),
            old_inputs=self._props(old_inputs or {}, False), preview=preview,
        )  # fmt: skip
        response: provider_pb2.UpdateResponse = self._call("Update", request)
        return from_struct(response.properties, preview)

    def delete(self, id_: str, props: Mapping[str, Any], *, old_inputs: Mapping[str, Any] | None = None) -> None:
        request = provider_pb2.DeleteRequest(
            id=id_, urn=self.urn, type=RESOURCE_TYPE, name=self.name,
            properties=self._props(props, False), old_inputs=self._props(old_inputs or {}, False),
        )  # fmt: skip
        self._call("Delete", request)


def peak_rss(pid: int) -> int:
    """A process's peak resident set since it started (``VmHWM``), in bytes: every allocation it made."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")
