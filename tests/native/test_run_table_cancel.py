"""Ctrl-C during a long RunTable apply on the plugin: the engine's ``Cancel`` stops the apply from beginning more
runs; the plugin answers with the table as it is (a partial state naming what was not begun), and the next
session's update finishes the rest, each run made once.

The plugin process is real and so is the MLflow server; ``Cancel`` is sent by the proxy in front of the server
while it holds the tenth ``runs/create``, so what was begun before it is exact: nothing here is timed.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from google.rpc import status_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from support.fault_proxy import FaultProxy
from support.host import isolated_env
from support.project import PACKAGE_VENV
from support.runs import all_runs

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

WAIT = 120.0
"""The bound of each call: generous, for a loaded machine."""
URN = "urn:pulumi:dev::p::mlflow-runs:index:RunTable::evals"
RUNS = 60
BEGUN = 10


class _Plugin:
    def __init__(self, stack: contextlib.ExitStack, tracking_uri: str) -> None:
        env = isolated_env(MLFLOW_TRACKING_URI=tracking_uri)
        command = [str(PACKAGE_VENV / "bin" / "pulumi-resource-mlflow-runs")]
        process = stack.enter_context(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        )
        stack.callback(process.kill)
        assert process.stdout is not None
        channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{int(process.stdout.readline())}"))
        self.stub = provider_pb2_grpc.ResourceProviderStub(channel)

    def configure(self) -> None:
        """A new engine session (the next ``up``): its retries, and its apply, are not cancelled."""
        request = provider_pb2.ConfigureRequest(args=struct_pb2.Struct(), acceptSecrets=True)
        self.stub.Configure(request, timeout=WAIT)


@pytest.fixture
def plugin(fault_proxy: FaultProxy) -> Iterator[_Plugin]:
    with contextlib.ExitStack() as stack:
        made = _Plugin(stack, fault_proxy.url)
        made.configure()
        yield made


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


def _partial_state(error: grpc.RpcError) -> tuple[str, dict[str, Any]]:
    """The message and the table's state of a partial failure (``ErrorResourceInitFailed``)."""
    trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    failed = provider_pb2.ErrorResourceInitFailed()
    (detail,) = status.details
    assert detail.Unpack(failed)
    return status.message, dict(failed.properties)


def test_cancel_stops_a_table_from_beginning_more_runs_and_the_next_session_finishes_it(
    plugin: _Plugin, fault_proxy: FaultProxy, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    runs = {f"eval-{i}": {"params": {"seed": str(i)}, "status": "FINISHED"} for i in range(RUNS)}
    news = _struct({"experimentId": experiment_id, "maxParallel": 1, "runs": runs})
    checked = plugin.stub.Check(provider_pb2.CheckRequest(urn=URN, news=news, olds=_struct({})), timeout=WAIT)
    assert not checked.failures, checked.failures

    fault_proxy.when("runs/create", lambda: plugin.stub.Cancel(empty_pb2.Empty(), timeout=WAIT), nth=BEGUN)
    with pytest.raises(grpc.RpcError) as cancelled:
        plugin.stub.Create(provider_pb2.CreateRequest(urn=URN, properties=checked.inputs), timeout=WAIT)
    message, state = _partial_state(cancelled.value)
    assert f"{RUNS - BEGUN} of {RUNS} run(s) were not begun: the `up` was cancelled" in message, message
    assert "failed" not in message, message
    made = {i for i, r in all_runs(mlflow_client, experiment_id).items() if r.info.lifecycle_stage == "active"}
    assert len(made) == BEGUN, "the run in flight when Cancel came is finished; no other is begun"
    assert set(dict(state["runIds"]).values()) == made, "the state holds every run made"

    plugin.configure()  # the next `up`
    fault_proxy.clear()
    updated = plugin.stub.Update(
        provider_pb2.UpdateRequest(
            id="table", urn=URN, olds=_struct(state), news=checked.inputs, old_inputs=checked.inputs
        ),
        timeout=WAIT,
    )
    ids = dict(dict(updated.properties)["runIds"])
    assert sorted(ids) == sorted(runs)
    assert made <= set(ids.values()), "a run made before the Cancel is kept, not made again"
    creates = sum(r.endpoint == "runs/create" for r in fault_proxy.requests)
    assert creates == RUNS - BEGUN, creates
    active = {i for i, r in all_runs(mlflow_client, experiment_id).items() if r.info.lifecycle_stage == "active"}
    assert active == set(ids.values()), "one run per entry"
