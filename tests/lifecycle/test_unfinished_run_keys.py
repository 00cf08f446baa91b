"""A run an earlier version's killed ``up`` left half-made is still finished by the next create, not doubled.

Earlier versions marked such a run with other keys than this one (``core.resource_key``): the plugin with
its whole URN hashed, the dynamic program with project, stack, parent URN and name. The create after an
upgrade carries those keys beside its own, finds the run by any of them, and finishes it. Against a real
MLflow server: through the dynamic provider host with the input the dynamic program sends, and through the
core's create with the input the plugin makes from its URN. The move between doors through the CLI is in
the tests of moving a stack to the plugin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from pulumi_mlflow_runs.core import resource_key as rk
from pulumi_mlflow_runs.core import run_lifecycle as lifecycle
from pulumi_mlflow_runs.core.client import MlflowApi

from support.host import DynamicHost
from support.mlflow_server import MlflowServer
from support.runs import all_runs, core_api, create_run, unique

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

TAG = "pulumi.resource_key"


def _old_dynamic_key(project: str, stack: str, parent_urn: str, name: str) -> str:
    """The dynamic program's key before this version, verbatim."""
    text = "\0".join((project, stack, parent_urn, "mlflow:ExperimentRun", name))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _active(client: MlflowClient, experiment_id: str) -> dict[str, dict[str, str]]:
    """Tags of every active run of the experiment, by run id."""
    runs = all_runs(client, experiment_id).values()
    return {r.info.run_id: dict(r.data.tags) for r in runs if r.info.lifecycle_stage == "active"}


@pytest.fixture
def api(mlflow_server: MlflowServer) -> Iterator[MlflowApi]:
    with core_api(mlflow_server.url) as made:
        yield made


def test_the_dynamic_door_finishes_a_run_its_earlier_version_left_marked(
    host: DynamicHost, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    stack, project = unique("stack"), "evals"
    old = _old_dynamic_key(project, stack, "", "train")
    left = mlflow_client.create_run(experiment_id, tags={TAG: f"creating:{old}"}).info.run_id
    other_key = _old_dynamic_key(project, stack, "", "eval")
    other = mlflow_client.create_run(experiment_id, tags={TAG: f"creating:{other_key}"})
    # What the dynamic program of this version sends for "train" (``_resource_key``): its key, then the old one.
    sent = rk.as_input(rk.of_parts(stack, project, [], "train"), [old])

    run_id, _, _ = create_run(host, experiment_id=experiment_id, resource_key=sent, tags={"team": "a"})

    assert run_id == left, "the half-made run is finished, not left behind"
    active = _active(mlflow_client, experiment_id)
    assert sorted(active) == sorted([left, other.info.run_id]), "no second run"
    assert active[left][TAG] == old and active[left]["team"] == "a", active[left]  # the mark is gone
    assert active[other.info.run_id][TAG].startswith("creating:"), "another resource's run is not taken"


def test_a_new_run_is_marked_with_the_new_key_alone(
    host: DynamicHost, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    stack = unique("stack")
    key = rk.of_parts(stack, "evals", [], "train")
    sent = rk.as_input(key, [_old_dynamic_key("evals", stack, "", "train")])
    run_id, _, _ = create_run(host, experiment_id=experiment_id, resource_key=sent)
    assert list(_active(mlflow_client, experiment_id)) == [run_id]
    assert mlflow_client.get_run(run_id).data.tags[TAG] == key


@pytest.mark.parametrize("door", ["plugin", "dynamic"])
def test_the_plugin_finishes_a_run_either_doors_earlier_version_left_marked(
    door: str, api: MlflowApi, mlflow_client: MlflowClient, experiment_id: str
) -> None:
    stack = unique("stack")
    urn = f"urn:pulumi:{stack}::evals::mlflow-runs:index:ExperimentRun::train"
    plugin_key = hashlib.sha256(urn.encode()).hexdigest()[:32]
    old = plugin_key if door == "plugin" else _old_dynamic_key("evals", stack, "", "train")
    left = mlflow_client.create_run(experiment_id, tags={TAG: f"creating:{old}"}).info.run_id
    inputs = lifecycle.checked_inputs({"experiment_id": experiment_id, "params": {"lr": "0.1"}})
    inputs["resource_key"] = rk.input_of_urn(urn)  # what the plugin's create sets (native/run.py)

    run_id, _ = lifecycle.create(api, inputs, lifecycle.now_ms())

    assert run_id == left
    active = _active(mlflow_client, experiment_id)
    assert list(active) == [left], "no second run"
    assert not active[left][TAG].startswith("creating:")
    assert mlflow_client.get_run(left).data.params == {"lr": "0.1"}


def test_a_changed_resource_key_is_no_change(host: DynamicHost, experiment_id: str) -> None:
    """A stack made before this version holds the old key alone in its inputs; the program now sends the new
    key and the old one. ``resource_key`` matters only to a create: the diff sees no change."""
    stack = unique("stack")
    old = _old_dynamic_key("evals", stack, "", "train")
    run_id, outs, stored = create_run(host, experiment_id=experiment_id, resource_key=old, tags={"team": "a"})
    news = host.check(outs, {**stored, "resource_key": rk.as_input(rk.of_parts(stack, "evals", [], "train"), [old])})
    assert news.failures == []
    diff = host.diff(run_id, outs, news.inputs, old_inputs=stored)
    assert (diff.changes, diff.replaces, diff.diffs) == ("none", [], [])
