"""How the plugin stops: SIGINT or SIGTERM (the calls in flight end, new ones are refused, then it exits; a
second signal exits at once), the engine's ``Cancel`` (no failed request is sent again; the plugin serves on),
and through the CLI an ``up`` whose plugin is interrupted while it creates a run.

The processes are real (``pulumi-resource-mlflow-runs`` from the virtualenv) and so is the server's side: a
stand-in that holds each request until the test lets it go, or fails each one. Nothing is timed: each step
waits on an event or a condition, with a generous bound.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support.host import isolated_env
from support.native_examples import assert_example_run, example_stack
from support.project import PACKAGE_VENV
from support.pulumi_cli import interrupter

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from support.fault_proxy import FaultProxy

WAIT = 60.0
"""The bound of every wait here: generous, for a loaded machine; none is expected to come near it."""
URN = "urn:pulumi:dev::p::mlflow-runs:index:ExperimentRun::r"
PLUGIN = "pulumi-resource-mlflow-runs"


class _Server:
    """A stand-in MLflow server on loopback: every request is counted (``arrived`` is set at the first), then
    held until ``release`` is set and answered "no such run"; or, with ``failing``, answered 503 at once."""

    def __init__(self) -> None:
        self.arrived, self.release = threading.Event(), threading.Event()
        self.failing = False
        self.count = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.count += 1
                server.arrived.set()
                if server.failing:
                    self._answer(503, "TEMPORARILY_UNAVAILABLE")
                    return
                server.release.wait(WAIT)
                self._answer(404, "RESOURCE_DOES_NOT_EXIST")

            def _answer(self, status: int, code: str) -> None:
                body = json.dumps({"error_code": code, "message": "stand-in"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"


class _Plugin:
    """The plugin process and a client of it, configured."""

    def __init__(self, stack: contextlib.ExitStack, env: dict[str, str]) -> None:
        import grpc
        from pulumi.runtime.proto import provider_pb2_grpc

        command = [PACKAGE_VENV / "bin" / PLUGIN]
        self.process = stack.enter_context(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        )
        stack.callback(self.process.kill)
        assert self.process.stdout is not None
        channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{int(self.process.stdout.readline())}"))
        self.stub = provider_pb2_grpc.ResourceProviderStub(channel)
        self.configure()

    def configure(self) -> None:
        from google.protobuf import struct_pb2
        from pulumi.runtime.proto import provider_pb2

        self.stub.Configure(provider_pb2.ConfigureRequest(args=struct_pb2.Struct(), acceptSecrets=True), timeout=WAIT)

    def read(self) -> Any:
        """A refresh of a run, in flight: the future of its answer (no deadline, as the engine calls)."""
        from google.protobuf import struct_pb2
        from pulumi.runtime.proto import provider_pb2

        state = struct_pb2.Struct()
        state.update({"run_id": "0" * 32, "experiment_id": "1"})
        return self.stub.Read.future(provider_pb2.ReadRequest(id="0" * 32, urn=URN, properties=state, inputs=state))

    def refuses_calls(self) -> bool:
        import grpc
        from google.protobuf import empty_pb2

        try:
            self.stub.GetPluginInfo(empty_pb2.Empty(), timeout=WAIT)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
            return True
        return False

    def signalled_during_a_read(self, server: _Server, sig: signal.Signals) -> Any:
        """``sig`` sent while the server holds a Read, once the plugin has taken it (it answers calls until then,
        and refuses every call after): the future of the Read."""
        read = self.read()
        assert server.arrived.wait(WAIT)
        self.process.send_signal(sig)
        for _ in range(int(WAIT * 10)):
            if self.refuses_calls():
                return read
            time.sleep(0.1)
        raise AssertionError("the plugin still takes calls")


@pytest.fixture
def server() -> Iterator[_Server]:
    stand_in = _Server()
    threading.Thread(target=stand_in.http.serve_forever, daemon=True).start()
    yield stand_in
    stand_in.release.set()
    stand_in.http.shutdown()
    stand_in.http.server_close()


@pytest.fixture
def plugin(server: _Server) -> Iterator[_Plugin]:
    """The plugin against the stand-in, with a retry deadline of an hour: no test here waits for it."""
    env = isolated_env(MLFLOW_TRACKING_URI=server.url, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="3600")
    with contextlib.ExitStack() as stack:
        yield _Plugin(stack, env)


@pytest.mark.slow
def test_sigterm_lets_the_call_in_flight_finish_refuses_the_next_and_exits(server: _Server, plugin: _Plugin) -> None:
    read = plugin.signalled_during_a_read(server, signal.SIGTERM)
    assert plugin.process.poll() is None, "the plugin waits for the call in flight"
    server.release.set()
    assert read.result(timeout=WAIT).id == "", "the call in flight was answered (the run is gone), not cut"
    assert plugin.process.wait(timeout=WAIT) == 0


@pytest.mark.slow
def test_a_second_signal_exits_at_once(server: _Server, plugin: _Plugin) -> None:
    import grpc

    read = plugin.signalled_during_a_read(server, signal.SIGINT)
    plugin.process.send_signal(signal.SIGINT)  # the server holds the Read all along
    assert plugin.process.wait(timeout=WAIT) == 128 + signal.SIGINT, "not the end of the grace (exit 1)"
    assert isinstance(read.exception(timeout=WAIT), grpc.RpcError)


@pytest.mark.slow
def test_cancel_ends_a_call_riding_out_an_outage_and_the_next_session_retries_again(
    server: _Server, plugin: _Plugin
) -> None:
    """The engine sends ``Cancel`` after a Ctrl-C and waits for the calls in flight: one that retries a failing
    server (until a deadline of an hour here) fails at its next attempt instead. The plugin serves on; a
    plugin attached with ``PULUMI_DEBUG_PROVIDERS`` is configured again by the next command, which retries."""
    import grpc
    from google.protobuf import empty_pb2

    from pulumi_mlflow_runs.core.retries import STOPPED_NOTE

    server.failing = True
    read = plugin.read()
    assert server.arrived.wait(WAIT)
    plugin.stub.Cancel(empty_pb2.Empty(), timeout=WAIT)
    failed = read.exception(timeout=WAIT)
    assert isinstance(failed, grpc.RpcError) and STOPPED_NOTE in str(failed.details()), failed
    assert not plugin.refuses_calls(), "Cancel does not stop the plugin"

    plugin.configure()  # the next command's
    before = server.count
    retried = plugin.read()
    for _ in range(int(WAIT * 10)):  # until the read has been sent again at least once
        if server.count >= before + 2:
            break
        time.sleep(0.1)
    assert server.count >= before + 2, "the next session retries"
    server.failing = False
    server.release.set()
    assert retried.result(timeout=WAIT).id == ""


def _plugin(args: list[bytes]) -> bool:
    """The plugin's processes (the engine's, under the CLI this test runs)."""
    return any(PLUGIN.encode() in arg for arg in args)


def test_an_up_whose_plugin_is_interrupted_while_it_creates_a_run_ends_and_the_next_converges(
    tmp_path: Path, pulumi_bin: Path, fault_proxy: FaultProxy, mlflow_client: MlflowClient
) -> None:
    """SIGINT reaches the plugin as the run's ``runs/create`` arrives. The create in flight completes (the run is
    whole on the server), the ``up`` ends (it hung for good before: the plugin never exited), and the next
    ``up`` converges on that one run."""
    project = example_stack("yaml-native", tmp_path, pulumi_bin, fault_proxy.url)
    try:
        sent: list[int] = []
        fault_proxy.when("runs/create", interrupter(_plugin, sent))
        project.pulumi("up", "--yes", "--skip-preview", ok=False)  # a hang fails here, at the timeout
        assert sent, "the plugin got SIGINT mid-create"
        fault_proxy.clear()
        name = project.pulumi("config", "get", "experimentName").stdout.strip()
        experiment = mlflow_client.get_experiment_by_name(name)
        assert experiment is not None
        (made,) = mlflow_client.search_runs([experiment.experiment_id])
        assert_example_run(mlflow_client, made.info.run_id)  # the create in flight completed
        project.pulumi("up", "--yes", "--skip-preview")
        project.pulumi("preview", "--diff", "--expect-no-changes")
        runs = mlflow_client.search_runs([experiment.experiment_id])
        assert [r.info.run_id for r in runs] == [made.info.run_id] == [project.outputs()["runId"]], "that one run"
    finally:
        project.remove()
