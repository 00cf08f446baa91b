"""What the convergence model found, kept: each divergence as its shortest history, replayed as it was printed,
and the fix proven on its own through the provider host.

A history is the model's own steps (``support.convergence``), so it replays on the stack it failed on: the
real CLI from a project folder, on both front doors. Add a new one as hypothesis prints it (``state.…``
lines) under its own test.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support.convergence import Convergence
from support.fault_proxy import FaultProxy
from support.host import DynamicHost, HostError, isolated_env
from support.mlflow_server import MlflowServer
from support.model_stacks import CliStack
from support.project import PACKAGE_VENV
from support.runs import all_runs, create_run, run_props, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

T0 = 1_767_225_600_000


@pytest.fixture
def cli_machine(
    request: pytest.FixtureRequest, tmp_path: Path, pulumi_bin: Path, model_server: MlflowServer
) -> Iterator[Callable[[], Convergence]]:
    """A new history of the model on the CLI stack of the test's ``door`` parameter."""
    from mlflow.tracking import MlflowClient

    with FaultProxy(model_server.url) as proxy:

        class Replayed(Convergence):
            pass

        door, _, table = str(request.param).partition("-")  # "native", or "native-table": the runs as a RunTable
        Replayed.as_table = bool(table)
        Replayed.client = MlflowClient(tracking_uri=model_server.url)
        Replayed.server, Replayed.proxy, Replayed.workdir = model_server, proxy, tmp_path
        Replayed.make_stack = functools.partial(CliStack, door=door, bin_dir=pulumi_bin, home=tmp_path)
        Replayed.seen = Counter()
        yield Replayed


DOORS = pytest.mark.parametrize("cli_machine", ["dynamic", "native"], indirect=True)
TABLES = pytest.mark.parametrize("cli_machine", ["dynamic-table", "native-table"], indirect=True)


@TABLES
def test_a_table_whose_ups_are_killed_converges(cli_machine: Callable[[], Any]) -> None:
    """The model's checks on a RunTable through the CLI, with the kills a generated history of CI's budget did not
    draw: the provider killed as the table's second new run is being created, then the CLI interrupted at an
    update's log-batch; each next ``up`` converges, every run made once, and an entry removed deletes its run."""
    state = cli_machine()
    state.first_run(name="alpha", lr=0.5)
    state.add_run(which=0, seed=1)
    state.add_run(which=0, seed=2)
    state.up_interrupted(how="SIGKILL provider", endpoint="runs/create", nth=2)
    state.append_points(which=0, key="loss", count=2, stamped=False, value=0.25)
    state.set_tag(which=1, value="b")
    state.up_interrupted(how="SIGINT cli", endpoint="runs/log-batch", nth=1)
    state.remove_run(which=2)
    state.up()
    state.teardown()
    assert state.seen["fired: SIGKILL provider"] == 1 and state.seen["fired: SIGINT cli"] == 1, state.seen


@TABLES
def test_a_table_entry_whose_file_writes_are_killed_converges(cli_machine: Callable[[], Any]) -> None:
    """An entry's metrics file through the CLI, with kills: the provider killed as the append of the file's new
    rows (without timestamps) reaches its log-batch, then a new entry with a file of its own and the CLI killed
    as its create logs the rows; each next ``up`` converges, every row logged once, with one timestamp per append."""
    state = cli_machine()
    state.first_run(name="alpha", lr=0.5, file="csv")
    state.append_rows(which=0, count=2, stamped=False, value=0.25, written=0)
    state.up_interrupted(how="SIGKILL provider", endpoint="runs/log-batch", nth=1)
    state.add_run(which=0, seed=1)
    state.declare_metrics_file(which=1, fmt="jsonl", key="val", count=3, stamped=True, value=0.75)
    state.up_interrupted(how="SIGKILL cli", endpoint="runs/log-batch", nth=1)
    state.teardown()
    assert state.seen["fired: SIGKILL provider"] == state.seen["fired: SIGKILL cli"] == 1, state.seen


@DOORS
def test_an_up_killed_after_its_log_batch_does_not_log_the_points_twice(cli_machine: Callable[[], Any]) -> None:
    """Found by the model: three points appended without timestamps; the CLI is killed once their log-batch
    reached the server. The state still has one point, so the next ``up`` stamped the three anew and logged
    them a second time (MLflow drops only exact repeats)."""
    state = cli_machine()
    state.first_run(name="alpha", lr=0.5)
    state.append_points(which=0, key="loss", count=3, stamped=False, value=0.5)
    state.up_interrupted(how="SIGKILL cli", endpoint="runs/log-batch", nth=1)
    state.teardown()
    assert state.seen["fired: SIGKILL cli"] == 1, state.seen


@DOORS
def test_a_create_killed_after_runs_create_finishes_the_run_without_its_mark(cli_machine: Callable[[], Any]) -> None:
    """Found by the model: the CLI killed while a second run's ``runs/create`` was in flight. The next ``up``
    took that run over (right), but left it marked ``creating:`` as if still unfinished."""
    state = cli_machine()
    state.first_run(name="alpha", lr=0.5)
    state.add_run(which=0, seed=0)
    state.up_interrupted(how="SIGKILL cli", endpoint="runs/create", nth=1)
    state.teardown()
    assert state.seen["fired: SIGKILL cli"] == 1, state.seen


@DOORS
def test_a_create_left_part_made_is_finished_after_a_refresh(cli_machine: Callable[[], Any]) -> None:
    """Found by the model on the native plugin (a server restart while a second run was being created):

    - the create's log-batch and its rollback both failed, so the plugin reported a partial failure and the
      engine kept the run, its state marked unread;
    - the refresh of the next ``up --refresh`` crashed on that state ("1 declared points against 0 logged")
      when the run declared points, and otherwise recorded the run as read, so the ``up`` saw no change and
      left the run marked ``creating:`` for good.

    Here the two failures are an outage of each endpoint, not a restart's timing. On the dynamic door the
    engine records no partial failure; the next create takes the run over.
    """
    state = cli_machine()
    state.first_run(name="alpha", lr=0.5)
    state.add_run(which=0, seed=6)
    state.append_points(which=1, key="loss", count=1, stamped=False, value=0.5)
    state.up_with_faults(faults=[("runs/log-batch", "outage"), ("runs/delete", "outage")])
    state.teardown()
    assert state.seen["up failed or killed, then a clean up"] == 1, state.seen


# ---- the fixes, through the provider host --------------------------------------------------------------------


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, int]]:
    return sorted((m.step, m.timestamp) for m in client.get_metric_history(run_id, key))


def test_an_update_takes_the_points_a_killed_one_logged_instead_of_logging_them_again(
    host: DynamicHost, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    from mlflow.entities import Metric

    first = {"experiment_id": experiment_id, "metrics": [{"key": "loss", "value": 1.0, "step": 0}]}
    run_id, outs, _ = create_run(host, **first)
    # What the killed update had logged before the engine could record it: two of the three new points.
    mlflow_client.log_batch(run_id, metrics=[Metric("loss", 0.5, T0 + s, s) for s in (1, 2)])
    appended = [*first["metrics"], *({"key": "loss", "value": 0.5, "step": s} for s in (1, 2, 3))]
    checked = host.check(outs, run_props(**{**first, "metrics": appended}))
    after = host.update(run_id, outs, checked.inputs)
    logged = _history(mlflow_client, run_id, "loss")
    assert [step for step, _ in logged] == [0, 1, 2, 3], "each point once"
    assert (1, T0 + 1) in logged and (2, T0 + 2) in logged, "the points logged before keep their timestamps"
    columns = after["logged_points"]["loss"]
    state_stamps = sorted(zip(columns["step"], columns["timestamp"], strict=True))
    assert state_stamps == logged, "the state records them as the server has them"


def test_an_update_with_nothing_unrecorded_reads_no_history(
    mlflow_client: MlflowClient, experiment_id: str, proxy: Any
) -> None:
    """The check costs one ``runs/get`` when new points need timestamps; histories only when it finds some."""
    with DynamicHost(env=isolated_env(MLFLOW_TRACKING_URI=proxy.url)) as host:
        host.configure({})
        first = {"experiment_id": experiment_id, "metrics": [{"key": "loss", "value": 1.0, "step": 0}]}
        run_id, outs, _ = create_run(host, **first)
        appended = [*first["metrics"], {"key": "loss", "value": 0.5, "step": 1}]
        checked = host.check(outs, run_props(**{**first, "metrics": appended}))
        mark = proxy.mark()
        host.update(run_id, outs, checked.inputs)
        sent = [r.endpoint for r in proxy.since(mark)]
    assert "metrics/get-history" not in sent, sent
    assert sent.count("runs/log-batch") == 1, sent
    assert [s for s, _ in _history(mlflow_client, run_id, "loss")] == [0, 1]


def test_a_create_that_takes_over_an_unfinished_run_drops_its_mark(
    host: DynamicHost, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    key = unique("key")
    left = mlflow_client.create_run(experiment_id, tags={"pulumi.resource_key": f"creating:{key}"}).info.run_id
    run_id, _, _ = create_run(host, experiment_id=experiment_id, resource_key=key, tags={"team": "a"})
    assert run_id == left, "the unfinished run is finished, not left behind"
    tags = mlflow_client.get_run(run_id).data.tags
    assert tags["pulumi.resource_key"] == key and tags["team"] == "a"


@DOORS
def test_an_empty_artifact_file_is_created_edited_and_removed(cli_machine: Callable[[], Any]) -> None:
    """Found by the model's soak: a run declaring an empty file (``StringAsset("")``) failed its first ``up``
    on both doors. The engine sends an empty text asset as its hash alone, and the SDK cannot read that form
    back from the outputs."""
    state = cli_machine()
    state.first_run(name="alpha", lr=0.5)
    state.edit_artifact(which=0, path="report.md", text="")
    state.up()
    state.edit_artifact(which=0, path="report.md", text="v1\n")
    state.up()
    state.edit_artifact(which=0, path="report.md", text="")
    state.up()
    state.edit_artifact(which=0, path="report.md", text=None)
    state.up()
    state.teardown()


# ---- a create that dies or fails after its last write: the next up takes the run back --------------------------


@DOORS
def test_a_create_whose_provider_dies_after_its_last_write_is_not_made_twice(cli_machine: Callable[[], Any]) -> None:
    """Found by the model on the stand-in (a server restart at a log-batch while a second run was being created
    and the first one's metrics file appended to; it failed one time in eight, by timing). Here the same
    without timing: the provider is killed while the create's last request, the log-batch that completes the run
    and drops its ``creating:`` mark, is on its way (the proxy forwards it after the kill), so the engine records
    no run. The next ``up`` takes the complete run back (its Check got no old inputs: no state holds it) instead
    of making a second one."""
    state = cli_machine()
    state.first_run(name="alpha", lr=0.5)
    state.add_run(which=0, seed=1)
    # The new run's params and tags take one log-batch, the up's only one (the first run does not change).
    state.up_interrupted(how="SIGKILL provider", endpoint="runs/log-batch", nth=1)
    state.teardown()
    assert state.seen["fired: SIGKILL provider"] == 1, state.seen


def _one_active(client: MlflowClient, experiment_id: str) -> str:
    active = [rid for rid, run in all_runs(client, experiment_id).items() if run.info.lifecycle_stage == "active"]
    assert len(active) == 1, active
    return active[0]


@pytest.mark.slow
def test_a_create_that_fails_after_its_last_write_is_not_made_twice(
    mlflow_client: MlflowClient, experiment_id: str, fault_proxy: FaultProxy
) -> None:
    """The same on the dynamic door's host, by an outage: the create's last log-batch completes the run but every
    answer to it is lost (a 500 after the server acted), and the rollback fails too; the engine (no partial
    failure on this door) records nothing. The error says what the next ``up`` does, and that ``up`` (a new host,
    Check without old inputs) takes the run back."""
    env = isolated_env(MLFLOW_TRACKING_URI=fault_proxy.url, PULUMI_MLFLOW_RUNS_RETRY_DEADLINE="1")
    inputs = {"experiment_id": experiment_id, "resource_key": unique("key"), "params": {"seed": "1"}}
    with DynamicHost(env=env) as host:
        host.configure({})
        checked = host.check({}, run_props(**inputs))
        fault_proxy.clear()
        fault_proxy.fail("runs/log-batch", "500-after", times=10_000)
        fault_proxy.fail("runs/delete", "503", times=10_000)
        with pytest.raises(HostError) as failed:
            host.create(checked.inputs)
        sent = [r.endpoint for r in fault_proxy.requests]
        assert sent[:4] == ["runs/search", "runs/search", "runs/create", "runs/log-batch"], sent
        assert "it may be marked complete (the answer to its last request was lost)" in str(failed.value)
        made = _one_active(mlflow_client, experiment_id)
    fault_proxy.clear()
    with DynamicHost(env=env) as host:  # the next up
        host.configure({})
        run_id, outputs = host.create(host.check({}, run_props(**inputs)).inputs)
    assert run_id == made == _one_active(mlflow_client, experiment_id)
    assert outputs["params"] == {"seed": "1"}
    assert "runs/create" not in [r.endpoint for r in fault_proxy.requests]


def _made(host: DynamicHost, inputs: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    checked = host.check({}, run_props(**inputs)).inputs
    run_id, outputs = host.create(checked)
    return run_id, outputs, checked


@pytest.mark.slow
def test_a_replace_never_takes_the_run_it_replaces(
    mlflow_client: MlflowClient, mlflow_server: MlflowServer, experiment_id: str
) -> None:
    """The run a replace replaces is complete and has the resource's key too, and Create is not told which it
    is. A replace Diff decided makes a new run and leaves the old one to the engine's delete. So does one the
    engine forces with old inputs to Check (``replaceWith``, ``deletedWith``), even from the same inputs."""
    env = isolated_env(MLFLOW_TRACKING_URI=mlflow_server.url)
    inputs = {"experiment_id": experiment_id, "resource_key": unique("key"), "params": {"seed": "1"}}
    with DynamicHost(env=env) as host:
        host.configure({})
        first, _, checked = _made(host, inputs)
    with DynamicHost(env=env) as host:  # replaceWith: Check with the old inputs, no Diff, Check again, Create
        host.configure({})
        host.check(checked, run_props(**inputs))
        forced, forced_outputs = host.create(host.check({}, run_props(**inputs)).inputs)
    assert forced != first
    changed = {**inputs, "params": {"seed": "2"}}
    with DynamicHost(env=env) as host:  # a replace Diff decided
        host.configure({})
        news = host.check(run_props(**inputs), run_props(**changed)).inputs
        assert host.diff(forced, forced_outputs, news).replaces == ["params"]
        replaced, _ = host.create(host.check({}, run_props(**changed)).inputs)
    assert replaced not in (first, forced)
    runs = all_runs(mlflow_client, experiment_id)
    assert {rid: run.data.params for rid, run in runs.items()} == {
        first: {"seed": "1"}, forced: {"seed": "1"}, replaced: {"seed": "2"}
    }  # fmt: skip
    assert all(run.info.lifecycle_stage == "active" for run in runs.values())


@pytest.mark.slow
def test_a_replace_forced_on_an_unchanged_run_keeps_it(
    mlflow_client: MlflowClient, mlflow_server: MlflowServer, experiment_id: str
) -> None:
    """``pulumi up --replace``: Check without old inputs, no Diff, as for a new resource, so the create takes
    back the complete run the state holds, exactly what the program declares; the engine's delete of the
    replaced resource then keeps it, and no second run is made. A later host deletes it as usual."""
    env = isolated_env(MLFLOW_TRACKING_URI=mlflow_server.url)
    inputs = {"experiment_id": experiment_id, "resource_key": unique("key"), "params": {"seed": "1"}}
    with DynamicHost(env=env) as host:
        host.configure({})
        first, outputs, _ = _made(host, inputs)
    with DynamicHost(env=env) as host:
        host.configure({})
        again, again_outputs, _ = _made(host, inputs)
        host.delete(first, outputs)
    assert again == first and mlflow_client.get_run(first).info.lifecycle_stage == "active"
    assert list(all_runs(mlflow_client, experiment_id)) == [first]
    with DynamicHost(env=env) as host:  # `pulumi destroy`
        host.configure({})
        host.delete(again, again_outputs)
    assert mlflow_client.get_run(first).info.lifecycle_stage == "deleted"


@pytest.mark.slow
def test_a_complete_run_that_differs_from_the_program_is_left_alone(
    mlflow_client: MlflowClient, mlflow_server: MlflowServer, experiment_id: str
) -> None:
    """A complete run of the resource that no state holds and that the program no longer describes (kept by
    ``retainOnDelete``, then edited) is the user's: the create makes a new run and leaves that one as it was."""
    env = isolated_env(MLFLOW_TRACKING_URI=mlflow_server.url)
    inputs = {"experiment_id": experiment_id, "resource_key": unique("key"), "params": {"seed": "1"}}
    with DynamicHost(env=env) as host:
        host.configure({})
        kept, _, _ = _made(host, {**inputs, "tags": {"team": "vision"}})
    with DynamicHost(env=env) as host:
        host.configure({})
        again, _, _ = _made(host, {**inputs, "tags": {"team": "nlp"}})
    assert again != kept
    assert mlflow_client.get_run(kept).data.tags["team"] == "vision"
    assert mlflow_client.get_run(kept).info.lifecycle_stage == "active"


# ---- the plugin interrupted during a call exits (finding 7) ---------------------------------------------------


class _SlowGone(BaseHTTPRequestHandler):
    """An MLflow server that takes 3 s to say that a run does not exist."""

    def do_GET(self) -> None:
        time.sleep(3)
        body = json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no run"}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.slow
def test_the_plugin_interrupted_during_a_call_exits() -> None:
    """Found by the model through the CLI on the native plugin (a larger budget than CI's): an ``up`` whose
    provider got SIGINT at a request hung until the model's 600 s timeout, the plugin stuck in its
    interpreter's shutdown (``cannot schedule new futures after interpreter shutdown`` for the calls after
    it); on the dynamic door, the model's SIGINT of the provider hung nothing. Here: a Read in flight (the
    server takes 3 s), SIGINT, one more call."""
    import grpc
    from google.protobuf import empty_pb2, struct_pb2
    from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ThreadingHTTPServer(("127.0.0.1", 0), _SlowGone))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        stack.callback(server.shutdown)
        env = isolated_env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{server.server_address[1]}")
        command = [PACKAGE_VENV / "bin" / "pulumi-resource-mlflow-runs"]
        plugin = stack.enter_context(
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        )
        stack.callback(plugin.kill)
        assert plugin.stdout is not None
        channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{int(plugin.stdout.readline())}"))
        stub = provider_pb2_grpc.ResourceProviderStub(channel)
        stub.Configure(provider_pb2.ConfigureRequest(args=struct_pb2.Struct(), acceptSecrets=True), timeout=10)
        state = struct_pb2.Struct()
        state.update({"run_id": "0" * 32, "experiment_id": "1"})
        urn = "urn:pulumi:dev::p::mlflow-runs:index:ExperimentRun::r"
        read = stub.Read.future(provider_pb2.ReadRequest(id="0" * 32, urn=urn, properties=state, inputs=state))
        time.sleep(1)  # the Read waits on the server
        plugin.send_signal(signal.SIGINT)
        time.sleep(0.5)
        later = stub.GetPluginInfo.future(empty_pb2.Empty())  # as the engine calls: no deadline
        stack.callback(later.cancel)
        read.exception(timeout=30)  # the Read ends (answered or not)
        try:
            plugin.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("the plugin is still running 10 s after its last call ended") from None
