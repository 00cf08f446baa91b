"""What the convergence model found, kept: each divergence as its shortest history, replayed as it was printed,
and the fix proven on its own through the provider host.

A history is the model's own steps (``support.convergence``), so it replays on the stack it failed on: the
real CLI from a project folder, on both front doors. Add a new one as hypothesis prints it (``state.…``
lines) under its own test.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from support.convergence import Convergence
from support.fault_proxy import FaultProxy
from support.host import DynamicHost, isolated_env
from support.mlflow_server import MlflowServer
from support.model_stacks import CliStack
from support.runs import create_run, run_props, unique

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

        Replayed.client = MlflowClient(tracking_uri=model_server.url)
        Replayed.server, Replayed.proxy, Replayed.workdir = model_server, proxy, tmp_path
        Replayed.make_stack = functools.partial(CliStack, door=request.param, bin_dir=pulumi_bin, home=tmp_path)
        Replayed.seen = Counter()
        yield Replayed


DOORS = pytest.mark.parametrize("cli_machine", ["dynamic", "native"], indirect=True)


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
